"""Per-object outputs of a whole-slide run, written tile row by tile row and assembled at the end."""

from __future__ import annotations

import csv
import io
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from phenoseg.errors import PhenosegError
from phenoseg.io.atomic import atomic_write
from phenoseg.io.contours import outline_json
from phenoseg.io.geojson import feature_json, make_feature, table_properties
from phenoseg.io.tables import anndata_from_columns, csv_lines, table_columns
from phenoseg.phenotype.table import MeasurePass, ObjectTable, PassContext, object_table, run_passes


class ObjectWriter:
    """Turns the objects of one target that a tile owns into GeoJSON feature lines and CSV rows (level-0
    coordinates), through the same per-object table and passes as an image in memory. The passes run on
    each tile's owned objects once their labels are final, reading the tile's pixels."""

    def __init__(self, channel_names: list[str], model_px: float, to_level0: float, namespace: uuid.UUID,
                 outputs: list[str], target: str = "nuclei", n_targets: int = 1, passes=()):
        self.names, self.model_px, self.to_level0, self.ns = channel_names, model_px, to_level0, namespace
        self.target, self.n_targets, self.passes = target, n_targets, list(passes)
        bad = [p.name for p in self.passes if getattr(p, "needs_all_objects", False)]
        if bad:
            raise PhenosegError(f"whole slides: the per-object pass(es) {', '.join(bad)} need every object of an "
                                "image at once and cannot run tile row by tile row yet")
        self.geojson, self.csv = "geojson" in outputs, "csv" in outputs or "anndata" in outputs
        empty = self._table(np.zeros((len(channel_names), 8, 8), np.float32), np.zeros((8, 8), np.int64),
                            np.zeros(0))
        self.header = list(table_columns(empty))
        self.main = empty.measurements.main.lower()

    def _table(self, raw: np.ndarray, local: np.ndarray, scores: np.ndarray) -> ObjectTable:
        table = object_table(local, self.target, scores)
        run_passes(table, PassContext(raw, {self.target: local}, self.model_px, self.names),
                   [MeasurePass(), *self.passes])
        return table

    def feature_id(self, gid: int) -> str:
        """A stable UUID per object (per target for multi-target models)."""
        key = str(gid) if self.n_targets == 1 else f"{self.target}:{gid}"
        return str(uuid.uuid5(self.ns, key))

    def describe(self, local: np.ndarray, raw: np.ndarray, first: int, scores: np.ndarray, ry0: int, rx0: int
                 ) -> tuple[list[str], list[str]]:
        """Feature JSON lines and CSV lines for objects ``local`` (1..k in the tile, global id first+k−1)."""
        if not (self.geojson or self.csv):
            return [], []
        table = self._table(raw, local, scores)
        m = table.measurements
        morph = m.morphology[m.main]
        morph["centroid_x"] = morph["centroid_x"] + rx0  # µm positions become slide positions
        morph["centroid_y"] = morph["centroid_y"] + ry0
        features: list[str] = []
        if self.geojson:
            meas = table_properties(table)
            classes = table.classification()
            name = None
            ids, texts = outline_json(local, self.to_level0, rx0, ry0)
            for label, text in zip(ids.tolist(), texts):
                gid = first + label - 1
                if self.n_targets > 1:
                    name = f"{self.target} {gid}"
                feat = make_feature(gid, "detection", meas.get(label, {}), float(scores[label - 1]),
                                    classes.get(label), feature_id=self.feature_id(gid), name=name)
                feat["properties"]["measurements"]["Label"] = gid
                features.append(feature_json(feat, text))
        rows: list[str] = []
        if self.csv and len(m.labels):
            cols = table_columns(table)
            cols["CellID"] = m.labels + first - 1
            s = self.to_level0
            cols["X_centroid"] = (morph["centroid_x"] + 0.5) * s - 0.5  # level-0 pixel coordinates
            cols["Y_centroid"] = (morph["centroid_y"] + 0.5) * s - 0.5
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(csv_lines({n: cols[n] for n in self.header}))
            rows = buf.getvalue().splitlines()
        return features, rows

    def part(self, parts: Path, row: int, suffix: str) -> Path:
        """The file of one tile row's part."""
        tag = "" if self.n_targets == 1 else f"_{self.target}"
        return parts / f"row{row:06d}{tag}{suffix}"

    def save_row(self, parts: Path, row: int, features: list[str], rows: list[str]) -> None:
        """Write one tile row's parts atomically (a rerun of the row replaces them)."""
        for suffix, lines in ((".jsonl", features), (".csv", rows)):
            with atomic_write(self.part(parts, row, suffix), suffix) as tmp:
                Path(tmp).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _labels_tiff(zarr_path: Path, target: str, out: Path, pixel_size_um: float | None, tile: int = 512) -> Path:
    """A tiled BigTIFF of level 0, written tile by tile from the zarr (never the whole image in memory)."""
    import tifffile
    import zarr

    arr = zarr.open_array(str(zarr_path / "labels" / target / "0"), mode="r")
    h, w = arr.shape

    def tiles():
        for y in range(0, h, tile):
            band = np.asarray(arr[y : y + tile, :])
            for x in range(0, w, tile):
                t = np.zeros((tile, tile), np.uint32)
                piece = band[:, x : x + tile]
                t[: piece.shape[0], : piece.shape[1]] = piece
                yield t

    kwargs = {}
    if pixel_size_um:
        kwargs = {"resolution": (1e4 / pixel_size_um, 1e4 / pixel_size_um), "resolutionunit": "CENTIMETER"}
    with atomic_write(out, ".tif") as tmp:
        tifffile.imwrite(tmp, tiles(), shape=(h, w), dtype=np.uint32, tile=(tile, tile), compression="zlib",
                         bigtiff=True, **kwargs)
    return out


def _replace_dir(src: Path, dst: Path) -> None:
    """Move a finished folder into place; an older result is moved aside first, then deleted."""
    old = dst.with_name(dst.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def finish_outputs(work: Path, zarr_path: Path, outdir: Path, stem: str, outputs: list[str], writers: list,
                   objects: list[ObjectWriter], n_rows: int, source: dict) -> list[Path]:
    """Pyramid + metadata for each target's labels, then the GeoJSON (every target's objects) and the CSV
    (one per target for multi-target models) assembled from the row parts."""
    files: list[Path] = []
    if writers:
        for w in writers:
            w.finish(source=source)
        if "labels" in outputs:
            for w in writers:
                files.append(_labels_tiff(zarr_path, w.name, outdir / f"{stem}_{w.name}.tif", w.pixel_size_um))
        if "zarr" in outputs:
            final = outdir / f"{stem}.ome.zarr"
            _replace_dir(zarr_path, final)
            files.append(final)
        else:
            shutil.rmtree(zarr_path, ignore_errors=True)
    parts = work / "parts"
    if "geojson" in outputs:
        out = outdir / f"{stem}.geojson"
        with atomic_write(out, ".geojson") as tmp, open(tmp, "w", encoding="utf-8") as fh:
            fh.write('{"type": "FeatureCollection", "features": [')
            first = True
            for obj in objects:
                for r in range(n_rows):
                    with open(obj.part(parts, r, ".jsonl"), encoding="utf-8") as part:
                        for line in part:
                            fh.write(("" if first else ",") + "\n" + line.rstrip("\n"))
                            first = False
            fh.write("\n]}\n")
        files.append(out)
    for obj in objects:
        tag = "" if len(objects) == 1 else f"_{obj.target}"
        if "csv" in outputs:
            out = outdir / f"{stem}{tag}_measurements.csv"
            with atomic_write(out, ".csv") as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
                csv.writer(fh, lineterminator="\n").writerow(obj.header)
                for r in range(n_rows):
                    with open(obj.part(parts, r, ".csv"), encoding="utf-8") as part:
                        shutil.copyfileobj(part, fh)
            files.append(out)
        if "anndata" in outputs:  # assembled from the same row parts: one table of every object in memory
            out = outdir / f"{stem}{tag}.h5ad"
            adata = anndata_from_columns(_read_parts(obj, parts, n_rows), obj.names, obj.main,
                                             f"{stem}_{obj.target}", source.get("pixel_size_um"))  # shapes: model grid
            with atomic_write(out, ".h5ad") as tmp:
                adata.write_h5ad(tmp)
            files.append(out)
    return files


def _read_parts(obj: ObjectWriter, parts: Path, n_rows: int) -> dict[str, np.ndarray]:
    """The CSV row parts of one target as columns (numbers as float64, CellID as int64)."""
    rows: list[list[str]] = []
    for r in range(n_rows):
        with open(obj.part(parts, r, ".csv"), encoding="utf-8", newline="") as part:
            rows.extend(csv.reader(part))
    cols: dict[str, np.ndarray] = {}
    for i, name in enumerate(obj.header):
        values = [row[i] for row in rows]
        try:
            cols[name] = np.array(values, np.int64 if name == "CellID" else np.float64)
        except ValueError:  # text columns added by per-object passes
            cols[name] = np.array(values, object)
    return cols

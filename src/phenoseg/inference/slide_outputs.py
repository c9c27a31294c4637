"""Per-object outputs of a whole-slide run, written tile row by tile row and assembled at the end."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from phenoseg.io.atomic import atomic_write
from phenoseg.io.geojson import make_feature, object_polygons, transform_geometry
from phenoseg.io.tables import mcmicro_columns
from phenoseg.phenotype.measurements import measure


class ObjectWriter:
    """Turns the objects a tile owns into GeoJSON feature lines and CSV rows (level-0 coordinates)."""

    def __init__(self, channel_names: list[str], model_px: float, to_level0: float, namespace: uuid.UUID,
                 outputs: list[str]):
        self.names, self.model_px, self.to_level0, self.ns = channel_names, model_px, to_level0, namespace
        self.geojson, self.csv = "geojson" in outputs, "csv" in outputs
        empty = measure(np.zeros((len(channel_names), 8, 8), np.float32), np.zeros((8, 8), np.int64), None,
                        model_px, channel_names)
        self.header = list(mcmicro_columns(empty))

    def describe(self, local: np.ndarray, raw: np.ndarray, first: int, scores: np.ndarray, ry0: int, rx0: int
                 ) -> tuple[list[str], list[str]]:
        """Feature JSON lines and CSV lines for objects ``local`` (1..k in the tile, global id first+k−1)."""
        if not (self.geojson or self.csv):
            return [], []
        m = measure(raw, local, None, self.model_px, self.names)
        morph = m.morphology[m.main]
        morph["centroid_x"] = morph["centroid_x"] + rx0  # µm positions become slide positions
        morph["centroid_y"] = morph["centroid_y"] + ry0
        features: list[str] = []
        if self.geojson:
            meas = m.per_object()
            for label, geom in object_polygons(local):
                gid = first + label - 1
                feat = make_feature(gid, transform_geometry(geom, self.to_level0, rx0, ry0), "detection",
                                    meas.get(label, {}), float(scores[label - 1]),
                                    feature_id=str(uuid.uuid5(self.ns, str(gid))))
                feat["properties"]["measurements"]["Label"] = gid
                features.append(json.dumps(feat, ensure_ascii=False))
        rows: list[str] = []
        if self.csv and len(m.labels):
            cols = mcmicro_columns(m)
            cols["CellID"] = m.labels + first - 1
            s = self.to_level0
            cols["X_centroid"] = (morph["centroid_x"] + 0.5) * s - 0.5  # level-0 pixel coordinates
            cols["Y_centroid"] = (morph["centroid_y"] + 0.5) * s - 0.5
            data = np.stack([np.asarray(cols[n], dtype=np.float64) for n in self.header], 1)
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            for row in data:
                w.writerow([int(row[0])] + [f"{v:.6g}" for v in row[1:]])
            rows = buf.getvalue().splitlines()
        return features, rows

    def save_row(self, parts: Path, row: int, features: list[str], rows: list[str]) -> None:
        """Write one tile row's parts atomically (a rerun of the row replaces them)."""
        for suffix, lines in ((".jsonl", features), (".csv", rows)):
            with atomic_write(parts / f"row{row:06d}{suffix}", suffix) as tmp:
                Path(tmp).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _labels_tiff(zarr_path: Path, out: Path, pixel_size_um: float | None, tile: int = 512) -> Path:
    """A tiled BigTIFF of level 0, written tile by tile from the zarr (never the whole image in memory)."""
    import tifffile
    import zarr

    arr = zarr.open_array(str(zarr_path / "labels" / "nuclei" / "0"), mode="r")
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


def finish_outputs(work: Path, zarr_path: Path, outdir: Path, stem: str, outputs: list[str], writer,
                   objects: ObjectWriter, n_rows: int, source: dict) -> list[Path]:
    """Pyramid + metadata for the labels, then the GeoJSON and CSV assembled from the row parts."""
    files: list[Path] = []
    if writer is not None:
        writer.finish(source=source)
        if "labels" in outputs:
            files.append(_labels_tiff(zarr_path, outdir / f"{stem}_nuclei.tif", writer.pixel_size_um))
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
            for r in range(n_rows):
                with open(parts / f"row{r:06d}.jsonl", encoding="utf-8") as part:
                    for line in part:
                        fh.write(("" if first else ",") + "\n" + line.rstrip("\n"))
                        first = False
            fh.write("\n]}\n")
        files.append(out)
    if "csv" in outputs:
        out = outdir / f"{stem}_measurements.csv"
        with atomic_write(out, ".csv") as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
            csv.writer(fh, lineterminator="\n").writerow(objects.header)
            for r in range(n_rows):
                with open(parts / f"row{r:06d}.csv", encoding="utf-8") as part:
                    shutil.copyfileobj(part, fh)
        files.append(out)
    return files

"""napari reader for phenoseg's outputs: label TIFFs (with their table as layer features), OME-Zarr labels of
whole slides (lazy, multiscale), QuPath GeoJSON (shapes, or points for point annotations, coloured by class)
and per-object tables (points at the centroids, the columns as features). No Qt needed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

LABEL_SUFFIXES = ("_nuclei", "_cells")
LayerData = tuple  # (data, kwargs, layer type)


def get_reader(path: str | list[str]):
    """napari's reader hook: a function reading ``path`` when it is a phenoseg output, else None."""
    if isinstance(path, list):
        readers = [get_reader(p) for p in path]
        if not readers or any(r is None for r in readers):
            return None
        return lambda paths: [layer for r, p in zip(readers, paths) for layer in r(p)]
    p = Path(path)
    name = p.name.lower()
    if p.is_dir() and (p / "labels").is_dir() and (name.endswith(".zarr")):
        return read_omezarr_labels
    if name.endswith((".tif", ".tiff")) and p.stem.endswith(LABEL_SUFFIXES):
        return read_label_tiff
    if name.endswith((".geojson", ".json")) and p.is_file():
        return read_geojson
    if name.endswith("_measurements.csv"):
        return read_table_points
    return None


def read_table(path: Path) -> dict[str, np.ndarray] | None:
    """A phenoseg CSV (``CellID`` first) as columns: numbers as float arrays, the rest as strings."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:1] != ["CellID"]:
        return None
    header, body = rows[0], rows[1:]
    cols: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        values = [r[j] if j < len(r) else "" for r in body]
        try:
            cols[name] = np.array([float(v) if v != "" else np.nan for v in values])
        except ValueError:
            cols[name] = np.array(values, dtype=object)
    cols["CellID"] = cols["CellID"].astype(np.int64)
    return cols


def features_frame(cols: dict[str, np.ndarray]):
    """Columns as a napari Labels ``features`` table: an ``index`` column holding each row's label value."""
    import pandas as pd

    frame = pd.DataFrame({k: v for k, v in cols.items()})
    frame.insert(0, "index", cols["CellID"])
    return frame


def table_for(label_path: Path) -> dict[str, np.ndarray] | None:
    """The per-object table written beside a label TIFF (``<stem>_measurements.csv``, else ``<stem>.h5ad``)."""
    stem = label_path.stem
    for suffix in LABEL_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    csv_path = label_path.with_name(f"{stem}_measurements.csv")
    if csv_path.is_file():
        return read_table(csv_path)
    h5ad = label_path.with_name(f"{stem}.h5ad")
    if h5ad.is_file():
        return anndata_table(h5ad)
    return None


def anndata_table(path: Path) -> dict[str, np.ndarray] | None:
    """The obs and X of a phenoseg AnnData file as columns (None without anndata installed)."""
    try:
        import anndata
    except ImportError:
        return None
    ad = anndata.read_h5ad(path)
    cols = {"CellID": np.asarray(ad.obs.get("CellID", ad.obs.index.astype(np.int64)), dtype=np.int64)}
    x = np.asarray(ad.X)
    for j, name in enumerate(ad.var_names):
        cols[str(name)] = x[:, j]
    for name in ad.obs.columns:
        if name != "CellID":
            cols[str(name)] = np.asarray(ad.obs[name])
    return cols


def tiff_pixel_size(path: Path) -> float | None:
    """µm per pixel from a TIFF's resolution tags (as phenoseg writes them), else None."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        res = page.tags.get("XResolution")
        unit = page.tags.get("ResolutionUnit")
        if res is None or unit is None:
            return None
        num, den = res.value
        per_unit = num / den if den else 0
        um = {2: 25400.0, 3: 10000.0}.get(int(unit.value))
        return um / per_unit if per_unit and um else None


def label_classes(cols: dict[str, np.ndarray] | None) -> dict[int, str]:
    """label → class name when the table has a ``class`` column (else empty)."""
    if cols is None or "class" not in cols:
        return {}
    return {int(i): str(c) for i, c in zip(cols["CellID"], cols["class"]) if str(c) not in ("", "nan")}


def class_colormap(classes: dict[int, str], colours: dict[str, tuple[int, int, int]] | None = None) -> dict:
    """A Labels colour dict: each classified object in its class's colour, others grey, background clear."""
    from phenoseg.models.classifier import class_colour

    names = sorted(set(classes.values()))
    colours = dict(colours or {})
    for i, n in enumerate(names):
        colours.setdefault(n, class_colour(n, i))
    out: dict = {None: (0.6, 0.6, 0.6, 1.0), 0: (0.0, 0.0, 0.0, 0.0)}
    for label, name in classes.items():
        r, g, b = colours[name]
        out[int(label)] = (r / 255, g / 255, b / 255, 1.0)
    return out


def read_label_tiff(path: str) -> list[LayerData]:
    """A label TIFF as a Labels layer, scaled in µm when the file says its pixel size, with its table."""
    from phenoseg.io.labels import read_labels

    p = Path(path)
    data = read_labels(p)
    kwargs: dict = {"name": p.stem, "metadata": {"phenoseg_path": str(p)}}
    px = tiff_pixel_size(p)
    if px:
        kwargs["scale"] = (px, px)
        kwargs["metadata"]["pixel_size_um"] = px
    cols = table_for(p)
    if cols is not None:
        kwargs["features"] = features_frame(cols)
        classes = label_classes(cols)
        if classes:
            kwargs["colormap"] = class_colormap(classes)
    return [(data, kwargs, "labels")]


def multiscales(group_attrs: dict) -> list[dict]:
    """The OME-NGFF ``multiscales`` list of a group (0.4 at the top level, 0.5 under ``ome``)."""
    attrs = group_attrs.get("ome", group_attrs)
    return attrs.get("multiscales", [])


def read_omezarr_labels(path: str) -> list[LayerData]:
    """Every label image under ``<slide>.ome.zarr/labels`` as a lazy multiscale Labels layer (µm scale)."""
    import zarr

    root = Path(path)
    layers = []
    for target in sorted(d.name for d in (root / "labels").iterdir() if d.is_dir()):
        group = zarr.open_group(str(root / "labels" / target), mode="r")
        ms = multiscales(dict(group.attrs))
        datasets = ms[0]["datasets"] if ms else [{"path": k} for k in sorted(group.array_keys(), key=int)]
        arrays = [group[d["path"]] for d in datasets]
        kwargs: dict = {"name": f"{root.name.split('.')[0]}_{target}", "multiscale": len(arrays) > 1}
        scale = [t["scale"] for t in datasets[0].get("coordinateTransformations", []) if t.get("type") == "scale"]
        if scale:
            kwargs["scale"] = tuple(scale[0][-2:])
        table = root.with_name(f"{root.name.split('.')[0]}_measurements.csv")
        main = "cells" if (root / "labels" / "cells").is_dir() else target
        cols = read_table(table) if table.is_file() and target == main else None
        if cols is not None:  # the slide's table describes its main objects (cells when there are)
            kwargs["features"] = features_frame(cols)
        layers.append((arrays if len(arrays) > 1 else arrays[0], kwargs, "labels"))
    return layers


def rgb(colour) -> list[float]:
    """An RGBA colour in 0..1 from QuPath's [r, g, b] (0..255) or a packed integer."""
    if isinstance(colour, int | float):
        v = int(colour) & 0xFFFFFF
        colour = [(v >> 16) & 255, (v >> 8) & 255, v & 255]
    return [colour[0] / 255, colour[1] / 255, colour[2] / 255, 1.0]


def read_geojson(path: str) -> list[LayerData]:
    """QuPath GeoJSON: polygons as a Shapes layer, points as a Points layer, coloured by classification, with
    name / class / measurements as features. Coordinates are pixels (x, y) → napari (row, column)."""
    doc = json.loads(Path(path).read_text())
    features = doc.get("features", []) if isinstance(doc, dict) and doc.get("type") == "FeatureCollection" \
        else doc if isinstance(doc, list) else [doc]
    polys, poly_props, points, point_props = [], [], [], []
    for f in features:
        geom = f.get("geometry") or {}
        props = f.get("properties") or {}
        cls = props.get("classification") or {}
        row = {"class": cls.get("name", ""), "colour": rgb(cls["color"]) if "color" in cls else [1, 1, 0, 1],
               **{k: v for k, v in (props.get("measurements") or {}).items() if isinstance(v, int | float)}}
        kind, coords = geom.get("type"), geom.get("coordinates")
        if kind == "Polygon":
            polys.append(np.asarray(coords[0], float)[:, ::-1])
            poly_props.append(row)
        elif kind == "MultiPolygon":
            for part in coords:
                polys.append(np.asarray(part[0], float)[:, ::-1])
                poly_props.append(row)
        elif kind == "Point":
            points.append(np.asarray(coords, float)[::-1])
            point_props.append(row)
        elif kind == "MultiPoint":
            for c in coords:
                points.append(np.asarray(c, float)[::-1])
                point_props.append(row)
    stem = Path(path).stem
    layers: list[LayerData] = []
    if polys:
        layers.append((polys, {"name": stem, "shape_type": "polygon", "edge_width": 1,
                               "edge_color": np.array([r["colour"] for r in poly_props]),
                               "face_color": "transparent", "features": _frame(poly_props)}, "shapes"))
    if points:
        layers.append((np.array(points), {"name": f"{stem} points", "size": 6,
                                          "face_color": np.array([r["colour"] for r in point_props]),
                                          "features": _frame(point_props)}, "points"))
    return layers


def _frame(rows: list[dict]):
    import pandas as pd

    return pd.DataFrame([{k: v for k, v in r.items() if k != "colour"} for r in rows])


def read_table_points(path: str) -> list[LayerData]:
    """A phenoseg CSV as points at the objects' centroids, the columns as features (coloured by class when
    classified)."""
    cols = read_table(Path(path))
    if cols is None or "X_centroid" not in cols:
        return []
    pts = np.stack([cols["Y_centroid"], cols["X_centroid"]], 1)
    return [(pts, {"name": Path(path).stem, "size": 5, "features": features_frame(cols)}, "points")]

"""QuPath annotation GeoJSON → a mask of the regions to analyse."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from skimage.draw import polygon as draw_polygon

from phenoseg.errors import PhenosegError


def _rings(geometry: dict) -> list[tuple[list, list[list]]]:
    kind = geometry.get("type")
    coords = geometry.get("coordinates", [])
    if kind == "Polygon":
        return [(coords[0], coords[1:])] if coords else []
    if kind == "MultiPolygon":
        return [(poly[0], poly[1:]) for poly in coords if poly]
    return []


def _annotation_rings(path: str | os.PathLike) -> list[tuple[list, list[list]]]:
    """(outer ring, holes) of every annotation polygon of a GeoJSON file (features whose ``objectType`` is
    given and is not "annotation" are ignored: detections, cells)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PhenosegError(f"{p}: cannot read regions GeoJSON ({exc})") from exc
    features = data.get("features", []) if isinstance(data, dict) and data.get("type") == "FeatureCollection" else (
        data if isinstance(data, list) else [data])
    rings = []
    for f in features:
        if not isinstance(f, dict) or "geometry" not in f:
            continue
        kind = (f.get("properties") or {}).get("objectType", f.get("objectType", "annotation"))
        if kind == "annotation":
            rings += _rings(f["geometry"] or {})
    if not rings:
        raise PhenosegError(f"{p}: no annotation polygons found")
    return rings


def read_region_shape(path: str | os.PathLike):
    """The annotation polygons of a GeoJSON file as one shapely geometry (pixel-corner coordinates, holes
    cut out): for whole slides, where a raster mask of level 0 would not fit in memory."""
    from shapely.geometry import Polygon
    from shapely.ops import unary_union

    polys = []
    for outer, holes in _annotation_rings(path):
        poly = Polygon(outer, holes)
        polys.append(poly if poly.is_valid else poly.buffer(0))
    return unary_union(polys)


def points_in_shape(shape, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Which points (pixel-corner coordinates) lie inside ``shape``."""
    import shapely

    return shapely.contains_xy(shape, np.asarray(x, np.float64), np.asarray(y, np.float64))


def read_regions(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """A boolean (Y, X) mask of the annotation polygons in a GeoJSON file (holes cut out)."""
    mask = np.zeros(shape, bool)
    for outer, holes in _annotation_rings(path):
        ring = np.asarray(outer, dtype=float)
        rr, cc = draw_polygon(ring[:, 1] - 0.5, ring[:, 0] - 0.5, shape)
        mask[rr, cc] = True
        for hole in holes:
            h = np.asarray(hole, dtype=float)
            rr, cc = draw_polygon(h[:, 1] - 0.5, h[:, 0] - 0.5, shape)
            mask[rr, cc] = False
    return mask


def keep_in_regions(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Zero every object whose centroid lies outside ``mask`` (labels keep their values)."""
    from phenoseg.phenotype.table import object_centroids

    if int(labels.max(initial=0)) == 0:
        return labels
    h, w = labels.shape
    area, cy, cx = object_centroids(labels)
    ok = np.zeros(area.size, bool)
    present = area > 0
    iy = np.clip(np.nan_to_num(cy).round().astype(int), 0, h - 1)
    ix = np.clip(np.nan_to_num(cx).round().astype(int), 0, w - 1)
    ok[present] = mask[iy[present], ix[present]]
    ok[0] = False
    return np.where(ok[labels.astype(np.int64)], labels, 0).astype(labels.dtype)

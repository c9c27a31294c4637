"""QuPath-compatible GeoJSON: label image → one Feature per object (streamed to disk)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage import measure

from phenoseg.io.atomic import atomic_write


def _ring(contour: np.ndarray, oy: float, ox: float) -> list[list[float]]:
    """find_contours (row, col) → closed [x, y] ring in image coordinates (pixel corners at integers)."""
    pts = [[round(float(c) + ox, 2), round(float(r) + oy, 2)] for r, c in contour]
    if pts[0] != pts[-1]:
        pts.append(pts[0])
    return pts


def object_polygons(labels: np.ndarray) -> Iterator[tuple[int, dict]]:
    """(label, GeoJSON geometry) for every object: outer ring traced from its boundary, holes kept.

    Coordinates are pixel-corner based: x = column, y = row, as QuPath expects.
    """
    from shapely.geometry import Polygon, mapping
    from shapely.ops import unary_union

    slices = ndi.find_objects(labels)
    for idx, sl in enumerate(slices):
        if sl is None:
            continue
        label = idx + 1
        mask = np.pad(labels[sl] == label, 1)
        # iso-line at 0.5 between pixel centres; pixel (r, c) has its centre at (c + 0.5, r + 0.5)
        contours = measure.find_contours(mask.astype(np.float32), 0.5)
        oy, ox = sl[0].start - 1 + 0.5, sl[1].start - 1 + 0.5
        polys = []
        for c in contours:
            if len(c) < 4:
                continue
            ring = _ring(c, oy, ox)
            poly = Polygon(ring)
            if not poly.is_valid:
                poly = poly.buffer(0)
            if poly.area > 0:
                polys.append(poly)
        if not polys:
            continue
        polys.sort(key=lambda p: p.area, reverse=True)
        # even-odd: contours inside the outer ring are holes
        shape = polys[0]
        for p in polys[1:]:
            shape = shape.difference(p) if shape.contains(p) else unary_union([shape, p])
        if shape.is_empty:
            continue
        yield label, mapping(shape)  # tuples serialise as JSON arrays


def make_feature(label: int, geom: dict, object_type: str, measurements: dict, score: float | None = None,
                 classification: tuple[str, tuple[int, int, int]] | None = None, nucleus_geom: dict | None = None,
                 feature_id: str | None = None, name: str | None = None) -> dict:
    """One QuPath feature: objectType and measurements inside ``properties``, NaN written as "NaN"."""
    props: dict = {"objectType": object_type, "name": name or f"{object_type} {label}"}
    meas = {"Label": label}
    meas.update(measurements)
    if score is not None and score == score:
        meas["Detection probability"] = round(score, 4)
    props["measurements"] = {k: ("NaN" if isinstance(v, float) and v != v else v) for k, v in meas.items()}
    if classification:
        name, colour = classification
        props["classification"] = {"name": name, "color": list(colour)}
    feature = {"type": "Feature", "id": feature_id or str(uuid.uuid4()), "geometry": geom, "properties": props}
    if nucleus_geom is not None:
        feature["nucleusGeometry"] = nucleus_geom
    return feature


def transform_geometry(geom: dict, scale: float, ox: float, oy: float) -> dict:
    """(x + ox, y + oy) · scale for every vertex of a Polygon / MultiPolygon (2 decimals, as QuPath)."""
    def ring(r):
        return [[round((x + ox) * scale, 2), round((y + oy) * scale, 2)] for x, y in r]

    if geom["type"] == "Polygon":
        return {"type": "Polygon", "coordinates": [ring(r) for r in geom["coordinates"]]}
    return {"type": geom["type"], "coordinates": [[ring(r) for r in poly] for poly in geom["coordinates"]]}


def table_properties(table) -> dict[int, dict]:
    """label → GeoJSON measurements of an :class:`~phenoseg.phenotype.table.ObjectTable`: the measurements
    under QuPath's names, then every column a per-object pass added (a classified object's class is its
    ``classification``, not a measurement: QuPath's measurements are numbers)."""
    props = table.measurements.per_object() if table.measurements is not None else {}
    if table.columns:
        for label, extra in table.column_rows().items():
            if table.classes is not None:
                extra.pop("class", None)
            props.setdefault(label, {}).update(extra)
    return props


def write_geojson(path: str | os.PathLike, labels: np.ndarray, object_type: str = "detection",
                  scores: np.ndarray | None = None, measurements: dict[int, dict] | None = None,
                  nuclei: np.ndarray | None = None, classes: dict[int, tuple[str, tuple[int, int, int]]] | None = None,
                  ) -> Path:
    """Stream a QuPath FeatureCollection of the objects in ``labels`` to ``path`` (temp file + rename).

    ``object_type`` "detection" (nuclei) or "cell"; for cells, ``nuclei`` (labelled with the cell ids)
    gives each feature its ``nucleusGeometry``. ``measurements`` maps label → {QuPath name: value};
    ``scores`` (index label − 1) adds "Detection probability"; ``classes`` maps label → (name, rgb).
    """
    p = Path(path)
    nucleus_geoms = dict(object_polygons(nuclei)) if nuclei is not None else {}
    with atomic_write(p) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write('{"type": "FeatureCollection", "features": [')
        first = True
        for label, geom in object_polygons(labels):
            meas = dict((measurements or {}).get(label, {}))
            score = float(scores[label - 1]) if scores is not None and label - 1 < len(scores) else None
            feature = make_feature(label, geom, object_type, meas, score, (classes or {}).get(label),
                                   nucleus_geoms.get(label))
            fh.write(("" if first else ",") + "\n" + json.dumps(feature, ensure_ascii=False))
            first = False
        fh.write("\n]}\n")
    return p

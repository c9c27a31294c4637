"""QuPath-compatible GeoJSON: label image → one Feature per object (streamed to disk); the outlines of all
objects are traced at once (:mod:`phenoseg.io.contours`)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np

from phenoseg.io.atomic import atomic_write
from phenoseg.io.contours import outline_json


def make_feature(label: int, object_type: str, measurements: dict, score: float | None = None,
                 classification: tuple[str, tuple[int, int, int]] | None = None,
                 feature_id: str | None = None, name: str | None = None) -> dict:
    """One QuPath feature without its geometry (see :func:`feature_json`): objectType and measurements inside
    ``properties``, NaN written as "NaN"."""
    props: dict = {"objectType": object_type, "name": name or f"{object_type} {label}"}
    meas = {"Label": label}
    meas.update(measurements)
    if score is not None and score == score:
        meas["Detection probability"] = round(score, 4)
    props["measurements"] = {k: ("NaN" if isinstance(v, float) and v != v else v) for k, v in meas.items()}
    if classification:
        name, colour = classification
        props["classification"] = {"name": name, "color": list(colour)}
    return {"type": "Feature", "id": feature_id or str(uuid.uuid4()), "properties": props}


def feature_json(feature: dict, geometry: str, nucleus_geometry: str | None = None) -> str:
    """The JSON text of a :func:`make_feature` feature with its geometry (and a cell's nucleusGeometry): the
    geometry texts of :func:`~phenoseg.io.contours.outline_json`, appended as they are."""
    text = json.dumps(feature, ensure_ascii=False)[:-1] + ', "geometry": ' + geometry
    if nucleus_geometry is not None:
        text += ', "nucleusGeometry": ' + nucleus_geometry
    return text + "}"


def table_properties(table) -> dict[int, dict]:
    """label → GeoJSON measurements of an :class:`~phenoseg.phenotype.table.ObjectTable`: the measurements
    under QuPath's names, then every column a per-object pass added (a classified object's class is its
    ``classification``, not a measurement: QuPath's measurements are numbers)."""
    props = table.measurements.per_object() if table.measurements is not None else {}
    rename = table.measurement_names
    if table.columns:
        for label, extra in table.column_rows().items():
            if table.classes is not None:
                extra.pop("class", None)
            if rename:
                extra = {rename.get(k, k): v for k, v in extra.items()}
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
    nucleus_text: dict[int, str] = {}
    if nuclei is not None:
        nids, ntexts = outline_json(nuclei)
        nucleus_text = dict(zip(nids.tolist(), ntexts))
    ids, texts = outline_json(labels)
    with atomic_write(p) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write('{"type": "FeatureCollection", "features": [')
        first = True
        for label, text in zip(ids.tolist(), texts):
            meas = dict((measurements or {}).get(label, {}))
            score = float(scores[label - 1]) if scores is not None and label - 1 < len(scores) else None
            nucleus = nucleus_text.get(label)
            feature = make_feature(label, object_type, meas, score, (classes or {}).get(label))
            fh.write(("" if first else ",") + "\n" + feature_json(feature, text, nucleus))
            first = False
        fh.write("\n]}\n")
    return p

"""Writing everything `segment` and `measure` produce for one image, from its per-object table."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phenoseg.errors import PhenosegError

OUTPUT_KINDS = ("labels", "zarr", "geojson", "csv", "anndata", "overlay", "report")
DEFAULT_OUTPUTS = "labels,geojson,csv,overlay,report"


def parse_outputs(text: str) -> list[str]:
    """Validate an --outputs list."""
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in OUTPUT_KINDS]
    if bad or not kinds:
        raise PhenosegError(
            f"outputs=: unknown output(s) {', '.join(bad) or '(none)'}; choose from {', '.join(OUTPUT_KINDS)}"
        )
    if "anndata" in kinds:
        try:
            import anndata  # noqa: F401
        except ImportError:
            raise PhenosegError(
                "outputs=anndata needs the 'anndata' package: pip install 'phenoseg[tables]'"
            ) from None
    return kinds


@dataclass
class ObjectSet:
    """Label images of one image, per target (``nuclei``, ``cells``), with what is known about them."""

    labels: dict[str, np.ndarray]
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    model: str = ""
    pixel_size_um: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # warnings / choices for the report


def main_objects(labels: dict[str, np.ndarray], scores: dict[str, np.ndarray]
                 ) -> tuple[str, dict[str, np.ndarray], np.ndarray | None]:
    """(the target that output rows describe, label images with nuclei paired to cells, its scores).

    With cells, each row is a cell and its nucleus a compartment (nuclei paired one to one, a nucleus
    without a cell becoming one); otherwise rows are the objects of the only target."""
    if "cells" in labels and "nuclei" in labels:
        from phenoseg.phenotype.compartments import assign_nuclei_to_cells

        cells, nuclei, _ = assign_nuclei_to_cells(labels["nuclei"], labels["cells"])
        return "cells", {"nuclei": nuclei, "cells": cells}, scores.get("cells")
    if len(labels) != 1:
        raise PhenosegError(f"cannot combine the targets {', '.join(labels)} into one table")
    target = next(iter(labels))
    return target, dict(labels), scores.get(target)


def write_image_outputs(objects: ObjectSet, image, stem: str, outdir: Path, kinds: list[str],
                        regions: Path | None = None, write_label_images: bool = True, passes=(),
                        stage_times: dict[str, float] | None = None):
    """Write the chosen outputs of one image; returns (files written, ImageReport or None, objects per target
    after the regions filter).

    The per-object table is built from the labels, the measure pass and then ``passes`` (each adding
    columns) run on it, and every table output (GeoJSON, CSV, AnnData, report) is written from it.
    ``stage_times`` (a dict) receives the seconds of each stage: ``measure_s``, then ``<output>_s``."""
    import time
    from collections import Counter

    from phenoseg.io.geojson import table_properties, write_geojson
    from phenoseg.io.labels import write_labels
    from phenoseg.io.overlay import class_overlay, overlay, write_png
    from phenoseg.io.regions import keep_in_regions, read_regions
    from phenoseg.io.report import ImageReport, thumbnail
    from phenoseg.io.tables import write_anndata, write_csv
    from phenoseg.phenotype.table import MeasurePass, PassContext, object_table, run_passes

    last = [time.perf_counter()]

    def lap(stage: str) -> None:
        now = time.perf_counter()
        if stage_times is not None:
            stage_times[stage] = stage_times.get(stage, 0.0) + now - last[0]
        last[0] = now

    labels = dict(objects.labels)
    if regions is not None:
        mask = read_regions(regions, image.shape_yx)
        labels = {t: keep_in_regions(lab, mask) for t, lab in labels.items()}
    written: list[Path] = []
    if "labels" in kinds and write_label_images:
        for target, lab in labels.items():
            written.append(write_labels(outdir / f"{stem}_{target}.tif", lab, objects.pixel_size_um))
        lap("labels_s")
    target, paired, scores = main_objects(labels, objects.scores)
    main = paired[target]
    table = None
    if any(k in kinds for k in ("geojson", "csv", "anndata", "report")) or ("overlay" in kinds and passes):
        table = object_table(main, target, scores)
        context = PassContext(image.data, paired, objects.pixel_size_um, image.channel_names)
        run_passes(table, context, [MeasurePass(), *passes])
        lap("measure_s")
    if "geojson" in kinds:  # cells carry their nucleus as nucleusGeometry
        cell = target == "cells"
        written.append(write_geojson(outdir / f"{stem}.geojson", main, "cell" if cell else "detection",
                                     table.scores_by_label(), table_properties(table),
                                     paired.get("nuclei") if cell else None, table.classification()))
        lap("geojson_s")
    if "csv" in kinds:
        written.append(write_csv(outdir / f"{stem}_measurements.csv", table))
        lap("csv_s")
    if "anndata" in kinds:
        written.append(write_anndata(outdir / f"{stem}.h5ad", table, region=f"{stem}_labels"))
        lap("anndata_s")
    if "overlay" in kinds:
        classes = table.classification() if table is not None else {}
        pic = class_overlay(image.data, main, classes) if classes else overlay(image.data, main)
        written.append(write_png(outdir / f"{stem}_overlay.png", pic))
        lap("overlay_s")
    report = None
    if "report" in kinds:
        m = table.measurements
        area_key = m.area_column()
        cols = m.qupath_columns()
        intens = {ch: m.intensity[m.main]["mean"][:, i] for i, ch in enumerate(m.channel_names)}
        classes = [c for c in table.columns.get("class", []) if c]
        report = ImageReport(stem, len(m.labels), thumbnail(image.data, main), cols[area_key], f"{m.unit}²",
                             intens, objects.model, objects.pixel_size_um, objects.seconds, list(objects.notes),
                             dict(Counter(classes)), positive_fractions(table))
        lap("report_s")
    counts = {t: len(table) if table is not None and t == target else count_objects(paired.get(t, lab))
              for t, lab in labels.items()}
    return written, report, counts


def positive_fractions(table) -> dict[str, float]:
    """Marker → the fraction of objects positive for it (from a positivity pass's columns)."""
    out = {}
    for name, values in table.columns.items():
        if name.endswith("_positive") and f"{name}_probability" in table.columns and len(values):
            out[name[: -len("_positive")]] = float(np.mean(values))
    return out


def count_objects(labels: np.ndarray) -> int:
    """The number of distinct objects (non-zero labels) of a label image."""
    return int(np.count_nonzero(np.bincount(labels.ravel())[1:])) if labels.size and labels.max() > 0 else 0

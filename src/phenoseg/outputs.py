"""Writing everything `segment` and `measure` produce for one image."""

from __future__ import annotations

from dataclasses import dataclass
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
            f"--outputs: unknown output(s) {', '.join(bad) or '(none)'}; choose from {', '.join(OUTPUT_KINDS)}"
        )
    if "anndata" in kinds:
        try:
            import anndata  # noqa: F401
        except ImportError:
            raise PhenosegError(
                "--outputs anndata needs the 'anndata' package: pip install 'phenoseg[tables]'"
            ) from None
    return kinds


@dataclass
class ObjectSet:
    """Labels of one image (nuclei, optionally cells) with what is known about them."""

    nuclei: np.ndarray
    cells: np.ndarray | None = None
    scores: np.ndarray | None = None
    model: str = ""
    pixel_size_um: float | None = None
    seconds: float = 0.0


def write_image_outputs(objects: ObjectSet, image, stem: str, outdir: Path, kinds: list[str],
                        regions: Path | None = None, write_label_images: bool = True):
    """Write the chosen outputs of one image; returns (files written, ImageReport or None)."""
    from phenoseg.io.geojson import write_geojson
    from phenoseg.io.labels import write_labels
    from phenoseg.io.overlay import overlay, write_png
    from phenoseg.io.regions import keep_in_regions, read_regions
    from phenoseg.io.report import ImageReport, thumbnail
    from phenoseg.io.tables import write_anndata, write_csv
    from phenoseg.phenotype.measurements import measure

    nuclei, cells = objects.nuclei, objects.cells
    if regions is not None:
        mask = read_regions(regions, nuclei.shape)
        nuclei = keep_in_regions(nuclei, mask)
        if cells is not None:
            cells = keep_in_regions(cells, mask)
    written: list[Path] = []
    if "labels" in kinds and write_label_images:
        written.append(write_labels(outdir / f"{stem}_nuclei.tif", nuclei, objects.pixel_size_um))
        if cells is not None:
            written.append(write_labels(outdir / f"{stem}_cells.tif", cells, objects.pixel_size_um))
    need_measure = any(k in kinds for k in ("geojson", "csv", "anndata", "report"))
    m = measure(image.data, nuclei, cells, objects.pixel_size_um, image.channel_names) if need_measure else None
    main = cells if cells is not None else nuclei
    if "geojson" in kinds:
        if cells is not None:
            from phenoseg.phenotype.compartments import assign_nuclei_to_cells

            cells2, nuclei2, _ = assign_nuclei_to_cells(nuclei, cells)
            written.append(write_geojson(outdir / f"{stem}.geojson", cells2, "cell", None, m.per_object(), nuclei2))
        else:
            written.append(write_geojson(outdir / f"{stem}.geojson", nuclei, "detection", objects.scores,
                                         m.per_object()))
    if "csv" in kinds:
        written.append(write_csv(outdir / f"{stem}_measurements.csv", m))
    if "anndata" in kinds:
        written.append(write_anndata(outdir / f"{stem}.h5ad", m, region=f"{stem}_labels"))
    if "overlay" in kinds:
        written.append(write_png(outdir / f"{stem}_overlay.png", overlay(image.data, main)))
    report = None
    if "report" in kinds:
        area_key = f"{m.main}: Area {m.unit}^2"
        cols = m.qupath_columns()
        intens = {ch: m.intensity[m.main]["mean"][:, i] for i, ch in enumerate(m.channel_names)}
        report = ImageReport(stem, len(m.labels), thumbnail(image.data, main), cols[area_key], f"{m.unit}²",
                             intens, objects.model, objects.pixel_size_um, objects.seconds)
    return written, report

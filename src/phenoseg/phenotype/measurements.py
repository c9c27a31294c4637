"""Measurements of every object: morphology per compartment, intensities per compartment and channel."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from phenoseg.phenotype.compartments import assign_nuclei_to_cells, membrane_band
from phenoseg.phenotype.intensity import intensity_stats
from phenoseg.phenotype.morphology import morphology

QUPATH_STAT = {"mean": "Mean", "median": "Median", "min": "Min", "max": "Max", "std": "Std.Dev."}
SHAPE_NAMES = {  # morphology key → (QuPath name, power of the length unit)
    "area": ("Area", 2),
    "perimeter": ("Length", 1),
    "circularity": ("Circularity", 0),
    "solidity": ("Solidity", 0),
    "max_diameter": ("Max diameter", 1),
    "min_diameter": ("Min diameter", 1),
    "eccentricity": ("Eccentricity", 0),
}


@dataclass
class Measurements:
    """Per-object measurements; row i describes object ``labels[i]`` (the cell label for cell models)."""

    labels: np.ndarray
    pixel_size_um: float | None
    channel_names: list[str]
    morphology: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    intensity: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    main: str = "Nucleus"

    @property
    def unit(self) -> str:
        """'µm' with a known pixel size, else 'px'."""
        return "µm" if self.pixel_size_um else "px"

    def scale(self, power: int) -> float:
        """Factor from pixels to the output unit for a quantity of length^power."""
        return (self.pixel_size_um or 1.0) ** power

    def prefix(self, compartment: str) -> str:
        """QuPath's measurement prefix: none for detections (one compartment), "Nucleus: " etc. for cells."""
        return f"{compartment}: " if self.main == "Cell" else ""

    def area_column(self) -> str:
        """The name of the main compartment's area column."""
        return f"{self.prefix(self.main)}Area {self.unit}^2"

    def qupath_columns(self) -> dict[str, np.ndarray]:
        """Every measurement under QuPath's names (units µm when the pixel size is known): detections
        unprefixed (``Area µm^2``, ``DAPI: Mean``), cells per compartment (``Cell: Area µm^2``,
        ``Nucleus: DAPI: Mean``). No centroids: QuPath computes them from the geometry."""
        u = self.unit
        cols: dict[str, np.ndarray] = {}
        for comp, m in self.morphology.items():
            for key, (name, power) in SHAPE_NAMES.items():
                suffix = f" {u}^2" if power == 2 else (f" {u}" if power == 1 else "")
                cols[f"{self.prefix(comp)}{name}{suffix}"] = m[key] * self.scale(power)
        if "Cell" in self.morphology and "Nucleus" in self.morphology:
            with np.errstate(invalid="ignore", divide="ignore"):
                cols["Nucleus/Cell area ratio"] = self.morphology["Nucleus"]["area"] / self.morphology["Cell"]["area"]
        for comp, stats in self.intensity.items():
            for ci, ch in enumerate(self.channel_names):
                for stat, name in QUPATH_STAT.items():
                    cols[f"{self.prefix(comp)}{ch}: {name}"] = stats[stat][:, ci]
        return cols

    def per_object(self) -> dict[int, dict[str, float]]:
        """label → {QuPath name: value} (rounded), for GeoJSON properties."""
        cols = self.qupath_columns()
        names = list(cols)
        matrix = np.stack([np.asarray(cols[n], dtype=np.float64) for n in names], 1) if names else None
        out = {}
        for i, label in enumerate(self.labels.tolist()):
            out[label] = {n: round(float(v), 4) for n, v in zip(names, matrix[i])} if matrix is not None else {}
        return out


def _select(d: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in d.items()}


def measure(
    image: np.ndarray,
    nuclei: np.ndarray,
    cells: np.ndarray | None = None,
    pixel_size_um: float | None = None,
    channel_names: list[str] | None = None,
    membrane_width_um: float = 1.0,
    main: str = "Nucleus",
) -> Measurements:
    """Measure every object of ``nuclei`` (and ``cells``) in ``image`` (C, Y, X) or (Y, X).

    With cells, nuclei are first paired with cells one to one (a nucleus without a cell becomes one) and
    intensities are reported for the Nucleus, Cytoplasm (cell minus nucleus), Membrane (an inner band of
    ``membrane_width_um``) and Cell compartments. Without cells the objects' compartment is named ``main``
    (``Cell`` for cell outlines measured without their nuclei).
    """
    if image.ndim == 2:
        image = image[None]
    if nuclei.shape != image.shape[-2:] or (cells is not None and cells.shape != image.shape[-2:]):
        raise ValueError("label images must have the image's height and width")
    names = list(channel_names) if channel_names else [f"Channel {i + 1}" for i in range(image.shape[0])]
    if cells is None:
        lab = nuclei.astype(np.int64)
        n = int(lab.max(initial=0))
        rows = np.flatnonzero(np.bincount(lab.ravel(), minlength=n + 1)[1:])
        m = Measurements(rows + 1, pixel_size_um, names, main=main)
        m.morphology[main] = _select(morphology(lab), rows)
        m.intensity[main] = _select(intensity_stats(lab, image, n), rows)
        return m
    cells2, nuclei2, _ = assign_nuclei_to_cells(nuclei, cells)
    n = int(cells2.max(initial=0))
    rows = np.flatnonzero(np.bincount(cells2.ravel(), minlength=n + 1)[1:])
    width = max(1, int(round(membrane_width_um / pixel_size_um))) if pixel_size_um else 2
    cytoplasm = np.where(nuclei2 > 0, 0, cells2)
    m = Measurements(rows + 1, pixel_size_um, names, main="Cell")
    nuc_morph = morphology(nuclei2)
    # cells without a nucleus have NaN nucleus shape rows
    pad = {k: np.concatenate([v, np.full(n - len(v), np.nan)]) if len(v) < n else v for k, v in nuc_morph.items()}
    m.morphology["Nucleus"] = _select(pad, rows)
    m.morphology["Cell"] = _select(morphology(cells2), rows)
    for comp, lab in (("Nucleus", nuclei2), ("Cytoplasm", cytoplasm), ("Membrane", membrane_band(cells2, width)),
                      ("Cell", cells2)):
        m.intensity[comp] = _select(intensity_stats(lab, image, n), rows)
    return m

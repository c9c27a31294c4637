"""Per-object tables: MCMICRO-style CSV and AnnData (.h5ad) for scverse / spatialdata."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from phenoseg.errors import PhenosegError
from phenoseg.io.atomic import atomic_write
from phenoseg.phenotype.measurements import QUPATH_STAT, Measurements
from phenoseg.phenotype.table import ObjectTable


def _split(source: Measurements | ObjectTable) -> tuple[Measurements, dict[str, np.ndarray]]:
    """(measurements, added columns) of a table (or of bare measurements: no added columns)."""
    if isinstance(source, ObjectTable):
        if source.measurements is None:
            raise ValueError("the object table has no measurements (run the measure pass first)")
        return source.measurements, source.columns
    return source, {}


def table_columns(source: Measurements | ObjectTable) -> dict[str, np.ndarray]:
    """Every CSV column: the MCMICRO ones, then the columns per-object passes added."""
    m, extra = _split(source)
    cols = mcmicro_columns(m)
    for name, values in extra.items():
        if name in cols:
            raise ValueError(f"column '{name}' clashes with a measurement column")
        cols[name] = values
    return cols

MCMICRO_SHAPE = {  # column → morphology key (pixels, as MCMICRO writes them)
    "Area": "area",
    "MajorAxisLength": "major_axis_length",
    "MinorAxisLength": "minor_axis_length",
    "Eccentricity": "eccentricity",
    "Solidity": "solidity",
    "Extent": "extent",
    "Orientation": "orientation",
    "Perimeter": "perimeter",
    "Circularity": "circularity",
    "MaxDiameter": "max_diameter",
    "MinDiameter": "min_diameter",
}


def mcmicro_columns(m: Measurements) -> dict[str, np.ndarray]:
    """The columns as MCMICRO's ``mcquant`` orders and names them: CellID, the mean of every channel in the
    main compartment, the other statistics as ``<channel>_intensity_<stat>``, then X/Y centroid and the
    shape (pixels). A cell table (one row per cell, its nucleus a compartment: one table instead of
    mcquant's one per mask, so a cell and its nucleus stay on one row) adds the other compartments as
    ``<channel>_<compartment>_intensity_<stat>`` and ``NucleusArea``."""
    main = m.morphology[m.main]
    cols: dict[str, np.ndarray] = {"CellID": m.labels}
    means = m.intensity[m.main]["mean"]
    for ci, ch in enumerate(m.channel_names):
        cols[ch] = means[:, ci]
    for comp, stats in m.intensity.items():
        part = "" if comp == m.main else f"{comp.lower()}_"
        for stat in QUPATH_STAT:
            if stat == "mean" and comp == m.main:
                continue
            for ci, ch in enumerate(m.channel_names):
                cols[f"{ch}_{part}intensity_{stat}"] = stats[stat][:, ci]
    cols["X_centroid"] = main["centroid_x"]
    cols["Y_centroid"] = main["centroid_y"]
    for col, key in MCMICRO_SHAPE.items():
        cols[col] = main[key]
    if m.main == "Cell" and "Nucleus" in m.morphology:
        cols["NucleusArea"] = m.morphology["Nucleus"]["area"]
    return cols


def csv_lines(cols: dict[str, np.ndarray]) -> list[list[str]]:
    """Rows of a table as CSV fields: the id as an integer, numbers with 9 significant digits (a float32
    exactly; centroids of a 100,000 px slide to 1/1000 px), text as is."""
    names = list(cols)
    n = len(cols[names[0]]) if names else 0
    rows = []
    for i in range(n):
        row = [str(int(cols[names[0]][i]))]
        for name in names[1:]:
            v = cols[name][i]
            row.append(f"{float(v):.9g}" if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                       else str(v))
        rows.append(row)
    return rows


def write_csv(path: str | os.PathLike, source: Measurements | ObjectTable) -> Path:
    """Write the MCMICRO-style table, with every added column (temp file + rename)."""
    p = Path(path)
    cols = table_columns(source)
    with atomic_write(p, ".csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(cols))
        writer.writerows(csv_lines(cols))
    return p


def to_anndata(source: Measurements | ObjectTable, region: str = "labels"):
    """AnnData: X = mean per channel (main compartment), other statistics in layers, shape in obs,
    ``obsm['spatial']`` = [x, y] in pixels, spatialdata linkage in ``uns['spatialdata_attrs']``."""
    m, _ = _split(source)
    classes = getattr(source, "classes", None)
    return anndata_from_columns(table_columns(source), m.channel_names, m.main.lower(), region, m.pixel_size_um,
                                classes)


COMPARTMENTS = ("nucleus", "cytoplasm", "membrane", "cell")


def anndata_from_columns(cols: dict[str, np.ndarray], channel_names: list[str], main: str, region: str,
                         pixel_size_um: float | None = None, classes: tuple | None = None):
    """The AnnData of a table of :func:`table_columns` (an image's, or a whole slide's CSV assembled at the
    end): X = channel means, every other statistic a layer ``<compartment>_<stat>``, marker positivity the
    layers ``positive_probability`` / ``positive`` (NaN for channels not scored), the rest in obs; a
    ``class`` column is categorical, its colours (``classes``: names, RGB) in ``uns["class_colors"]``."""
    try:
        import anndata as ad
        import pandas as pd
    except ImportError as exc:
        raise PhenosegError("AnnData output needs the 'anndata' package: pip install 'phenoseg[tables]'") from exc
    ids = np.asarray(cols["CellID"]).astype(np.int64)
    used = {"CellID", "X_centroid", "Y_centroid", *channel_names}
    layers = {f"{main}_mean": np.stack([cols[c] for c in channel_names], 1).astype(np.float32)}
    for comp in COMPARTMENTS:
        part = "" if comp == main else f"{comp}_"
        for stat in QUPATH_STAT:
            names = [f"{ch}_{part}intensity_{stat}" for ch in channel_names]
            if all(n in cols for n in names):
                layers[f"{comp}_{stat}"] = np.stack([cols[n] for n in names], 1).astype(np.float32)
                used.update(names)
    for layer in ("positive_probability", "positive"):  # marker positivity: cells × channels, NaN unscored
        names = [f"{ch}_{layer}" for ch in channel_names]
        if any(n in cols for n in names):
            layers[layer] = np.stack([np.asarray(cols[n], np.float32) if n in cols else
                                      np.full(len(ids), np.nan, np.float32) for n in names], 1)
            used.update(names)
    obs = pd.DataFrame(index=pd.Index([str(i) for i in ids], name="cell"))
    obs["cell_id"] = ids
    obs["region"] = pd.Categorical([region] * len(ids))
    for name, values in cols.items():
        if name not in used:
            obs[name] = np.asarray(values)
    if "class" in obs:
        names = list(classes[0]) if classes else sorted({str(c) for c in obs["class"] if str(c)})
        obs["class"] = pd.Categorical([str(c) for c in obs["class"]], categories=names)
    if pixel_size_um and "Area" in cols:
        obs["Area_µm2"] = np.asarray(cols["Area"], np.float64) * pixel_size_um**2
    var = pd.DataFrame(index=pd.Index(channel_names, name="channel"))
    adata = ad.AnnData(X=layers[f"{main}_mean"], obs=obs, var=var, layers=layers)
    adata.obsm["spatial"] = np.stack([cols["X_centroid"], cols["Y_centroid"]], 1).astype(np.float64)
    if classes and "class" in obs:
        adata.uns["class_colors"] = ["#{:02x}{:02x}{:02x}".format(*map(int, c)) for c in classes[1]]
    adata.uns["spatialdata_attrs"] = {"region": region, "region_key": "region", "instance_key": "cell_id"}
    adata.uns["phenoseg"] = {"pixel_size_um": pixel_size_um or 0.0, "compartment_of_X": main}
    return adata


def write_anndata(path: str | os.PathLike, source: Measurements | ObjectTable, region: str = "labels") -> Path:
    """Write ``.h5ad`` (temp file + rename)."""
    p = Path(path)
    adata = to_anndata(source, region)
    with atomic_write(p, ".h5ad") as tmp:
        adata.write_h5ad(tmp)
    return p

"""Per-object tables: MCMICRO-style CSV and AnnData (.h5ad) for scverse / spatialdata."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from phenoseg.errors import PhenosegError
from phenoseg.io.atomic import atomic_write
from phenoseg.phenotype.measurements import QUPATH_STAT, Measurements

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
    """CellID, X/Y centroid, one mean column per channel (main compartment), shape in pixels, then
    every statistic of every compartment as ``<channel>_<compartment>_<stat>``."""
    main = m.morphology[m.main]
    cols: dict[str, np.ndarray] = {"CellID": m.labels}
    means = m.intensity[m.main]["mean"]
    for ci, ch in enumerate(m.channel_names):
        cols[ch] = means[:, ci]
    cols["X_centroid"] = main["centroid_x"]
    cols["Y_centroid"] = main["centroid_y"]
    for col, key in MCMICRO_SHAPE.items():
        cols[col] = main[key]
    if m.main == "Cell":
        cols["NucleusArea"] = m.morphology["Nucleus"]["area"]
    for comp, stats in m.intensity.items():
        for stat in QUPATH_STAT:
            for ci, ch in enumerate(m.channel_names):
                cols[f"{ch}_{comp.lower()}_{stat}"] = stats[stat][:, ci]
    return cols


def write_csv(path: str | os.PathLike, m: Measurements) -> Path:
    """Write the MCMICRO-style table (temp file + rename)."""
    p = Path(path)
    cols = mcmicro_columns(m)
    names = list(cols)
    with atomic_write(p, ".csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        data = np.stack([np.asarray(cols[n], dtype=np.float64) for n in names], 1) if len(m.labels) else []
        for row in data:
            writer.writerow([int(row[0])] + [f"{v:.6g}" for v in row[1:]])
    return p


def to_anndata(m: Measurements, region: str = "labels"):
    """AnnData: X = mean per channel (main compartment), other statistics in layers, shape in obs,
    ``obsm['spatial']`` = [x, y] in pixels, spatialdata linkage in ``uns['spatialdata_attrs']``."""
    try:
        import anndata as ad
        import pandas as pd
    except ImportError as exc:
        raise PhenosegError("AnnData output needs the 'anndata' package: pip install 'phenoseg[tables]'") from exc
    main = m.morphology[m.main]
    ids = [str(int(i)) for i in m.labels]
    obs = pd.DataFrame(index=pd.Index(ids, name="cell"))
    obs["cell_id"] = m.labels.astype(np.int64)
    obs["region"] = pd.Categorical([region] * len(ids))
    for col, key in MCMICRO_SHAPE.items():
        obs[col] = main[key].astype(np.float64)
    if m.pixel_size_um:
        obs[f"Area_{m.unit}2"] = main["area"] * m.pixel_size_um**2
    var = pd.DataFrame(index=pd.Index(m.channel_names, name="channel"))
    layers = {
        f"{comp.lower()}_{stat}": stats[stat].astype(np.float32)
        for comp, stats in m.intensity.items()
        for stat in QUPATH_STAT
    }
    adata = ad.AnnData(X=m.intensity[m.main]["mean"].astype(np.float32), obs=obs, var=var, layers=layers)
    adata.obsm["spatial"] = np.stack([main["centroid_x"], main["centroid_y"]], 1).astype(np.float64)
    adata.uns["spatialdata_attrs"] = {"region": region, "region_key": "region", "instance_key": "cell_id"}
    adata.uns["phenoseg"] = {"pixel_size_um": m.pixel_size_um or 0.0, "compartment_of_X": m.main.lower()}
    return adata


def write_anndata(path: str | os.PathLike, m: Measurements, region: str = "labels") -> Path:
    """Write ``.h5ad`` (temp file + rename)."""
    p = Path(path)
    adata = to_anndata(m, region)
    with atomic_write(p, ".h5ad") as tmp:
        adata.write_h5ad(tmp)
    return p

"""Label-free clustering metrics (method §4): how well the cells of a segmentation separate into types.

Per image: the cells' mean intensities (cells × channels) → z-score per channel → a k-nearest-neighbour
graph → Leiden communities at a few resolutions → Davies–Bouldin (lower is better), Silhouette and
Calinski–Harabasz (higher is better) of those communities in the z-scored space. A segmentation whose cells
mix their neighbours' signal gives blurrier populations, hence worse scores; no ground truth is needed.
Needs ``pip install 'phenoseg[cluster]'`` (scikit-learn, leidenalg, igraph).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from phenoseg.errors import PhenosegError

METRICS = ("davies_bouldin", "silhouette", "calinski_harabasz")
SILHOUETTE_SAMPLE = 10000  # cells; the silhouette is O(n²)


def read_mean_intensities(path: str | Path, channels: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """(cells × channels) mean intensities of a per-cell CSV (phenoseg's or MCMICRO's: the channel means are
    the columns after ``CellID`` up to the first ``*_intensity_*`` / centroid / shape column)."""
    p = Path(path)
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise PhenosegError(f"{p}: cannot read it as a CSV table ({exc})") from None
    if len(rows) < 2:
        raise PhenosegError(f"{p}: no cells in this table")
    header = rows[0]
    if channels is None:
        start = 1 if header and header[0] == "CellID" else 0
        stop = start
        while stop < len(header) and "_intensity_" not in header[stop] and header[stop] not in (
                "X_centroid", "Y_centroid", "Area"):
            stop += 1
        names = header[start:stop]
    else:
        names = list(channels)
    missing = [n for n in names if n not in header]
    if missing or not names:
        raise PhenosegError(f"{p}: no channel column(s) {', '.join(missing) or '(none found)'}; columns are "
                            f"{', '.join(header[:12])}{' ...' if len(header) > 12 else ''}")
    idx = [header.index(n) for n in names]
    try:
        x = np.array([[float(r[i]) for i in idx] for r in rows[1:] if r], np.float64)
    except (ValueError, IndexError):
        raise PhenosegError(f"{p}: the channel columns hold values that are not numbers") from None
    return x, names


def zscore(x: np.ndarray) -> np.ndarray:
    """Each column to mean 0, SD 1 (a constant column becomes 0); NaN rows become 0."""
    x = np.nan_to_num(np.asarray(x, np.float64))
    sd = x.std(0)
    return (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)


def knn_graph(z: np.ndarray, k: int):
    """An undirected igraph graph joining every cell to its ``k`` nearest neighbours."""
    import igraph as ig
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(z) - 1)
    _, nbr = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z)
    src = np.repeat(np.arange(len(z)), k)
    dst = nbr[:, 1:].ravel()
    edges = np.unique(np.sort(np.stack([src, dst], 1), 1), axis=0)
    return ig.Graph(n=len(z), edges=edges.tolist())


def leiden(graph, resolution: float, seed: int = 0) -> np.ndarray:
    """Leiden communities (RB configuration model at ``resolution``), one label per cell."""
    import leidenalg

    part = leidenalg.find_partition(graph, leidenalg.RBConfigurationVertexPartition,
                                    resolution_parameter=resolution, seed=seed)
    return np.asarray(part.membership, np.int64)


def cluster_scores(z: np.ndarray, clusters: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Davies–Bouldin, Silhouette and Calinski–Harabasz of a clustering (NaN with fewer than 2 clusters)."""
    from sklearn import metrics

    k = len(np.unique(clusters))
    out = {"clusters": int(k)}
    if k < 2 or k >= len(z):
        return {**out, **{m: float("nan") for m in METRICS}}
    sample = min(len(z), SILHOUETTE_SAMPLE)
    out["davies_bouldin"] = float(metrics.davies_bouldin_score(z, clusters))
    out["silhouette"] = float(metrics.silhouette_score(z, clusters, sample_size=sample, random_state=seed))
    out["calinski_harabasz"] = float(metrics.calinski_harabasz_score(z, clusters))
    return out


def image_metrics(x: np.ndarray, resolutions: Sequence[float] = (0.05, 0.10, 0.15), k: int = 15,
                  seed: int = 0) -> dict:
    """The metrics of one image's cells at each resolution, and their mean over resolutions."""
    if len(x) < 3:
        raise PhenosegError(f"{len(x)} cell(s): clustering needs at least 3")
    try:
        import igraph  # noqa: F401
        import leidenalg  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError:
        raise PhenosegError("cluster metrics need scikit-learn, leidenalg and igraph: "
                            "pip install 'phenoseg[cluster]'") from None
    z = zscore(x)
    graph = knn_graph(z, k)
    per = {f"{r:g}": cluster_scores(z, leiden(graph, r, seed), seed) for r in resolutions}
    mean = {m: float(np.nanmean([v[m] for v in per.values()])) if any(np.isfinite(v[m]) for v in per.values())
            else float("nan") for m in METRICS}
    return {"cells": int(len(x)), "channels": int(x.shape[1]), "resolutions": per, "mean": mean}


def tables_metrics(paths: Sequence[str | Path], channels: Sequence[str] | None = None,
                   resolutions: Sequence[float] = (0.05, 0.10, 0.15), k: int = 15) -> dict:
    """:func:`image_metrics` of every table and the average over tables."""
    images = {}
    for p in paths:
        x, names = read_mean_intensities(p, channels)
        images[str(p)] = {**image_metrics(x, resolutions, k), "channel_names": names}
    mean = {m: float(np.nanmean([v["mean"][m] for v in images.values()])) for m in METRICS}
    return {"images": images, "mean": mean, "resolutions": list(resolutions), "neighbours": k}

"""Label-free clustering metrics: worked examples and the `phenoseg cluster-metrics` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from phenoseg.cli.main import main
from phenoseg.evaluation.cluster_metrics import cluster_scores, image_metrics, read_mean_intensities, zscore


def populations(n: int, separation: float, seed: int = 0) -> np.ndarray:
    """Cells of three types in 4 channels: each type bright in its own channel by ``separation`` SDs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (3 * n, 4))
    for t in range(3):
        x[t * n:(t + 1) * n, t] += separation
    return x


def test_scores_by_hand():
    z = np.array([[0.0, 0], [0, 1], [10, 0], [10, 1]])
    s = cluster_scores(z, np.array([0, 0, 1, 1]))
    # centroids (0, .5) and (10, .5): within-cluster scatter 0.5 each, centroid distance 10 → DB = 0.1
    assert s["davies_bouldin"] == pytest.approx(0.1)
    # silhouette of each point: a = 1, b = mean(10, sqrt(101)) → (b - a) / b
    b = (10 + np.sqrt(101)) / 2
    assert s["silhouette"] == pytest.approx((b - 1) / b)
    # CH = (between / (k-1)) / (within / (n-k)) = (4 * 25 / 1) / (4 * 0.25 / 2)
    assert s["calinski_harabasz"] == pytest.approx(100 / 0.5)
    assert np.isnan(cluster_scores(z, np.zeros(4, int))["silhouette"])  # one cluster: undefined
    assert np.allclose(zscore(np.array([[1.0, 5], [3, 5]])), [[-1, 0], [1, 0]])


def test_separated_populations_score_better_than_mixed_ones():
    clean = image_metrics(populations(150, 6.0))
    mixed = image_metrics(populations(150, 2.0))
    assert set(clean["resolutions"]) == {"0.05", "0.1", "0.15"} and clean["cells"] == 450
    assert clean["mean"]["silhouette"] > mixed["mean"]["silhouette"] + 0.1
    assert clean["mean"]["davies_bouldin"] < mixed["mean"]["davies_bouldin"]
    assert clean["mean"]["calinski_harabasz"] > mixed["mean"]["calinski_harabasz"]
    blur = image_metrics(populations(150, 1.0))  # no structure: Leiden finds one cluster, the scores are undefined
    assert all(r["clusters"] == 1 for r in blur["resolutions"].values()) and np.isnan(blur["mean"]["silhouette"])


def test_command_reads_phenoseg_and_mcquant_tables(tmp_path, capsys):
    x = populations(60, 5.0)
    a = tmp_path / "a.csv"  # phenoseg / mcquant layout: CellID, channel means, other statistics, centroids, shape
    lines = ["CellID,CD3,CD8,PanCK,DAPI,CD3_intensity_median,X_centroid,Y_centroid,Area"]
    lines += [f"{i + 1}," + ",".join(f"{v:.4f}" for v in row) + ",0,1,1,10" for i, row in enumerate(x)]
    a.write_text("\n".join(lines) + "\n")
    vals, names = read_mean_intensities(a)
    assert names == ["CD3", "CD8", "PanCK", "DAPI"] and vals.shape == (180, 4)
    assert read_mean_intensities(a, ["CD8"])[0].shape == (180, 1)
    out = tmp_path / "m.json"
    assert main(["cluster-metrics", str(a), str(a), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert len(res["images"]) == 1 or res["images"][str(a)]["cells"] == 180
    assert res["mean"]["silhouette"] > 0.3
    assert "Davies-Bouldin" in capsys.readouterr().out
    assert main(["cluster-metrics", str(a), "--channels", "CD99"]) == 2
    assert "no channel column(s) CD99" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("CellID,CD3\n1,abc\n2,3\n3,4\n")
    assert main(["cluster-metrics", str(bad)]) == 2
    assert main(["cluster-metrics", str(a), "--resolutions", "x"]) == 2

"""The bundled marker_positivity model: it loads, and it calls a clear marker right on cells it never saw."""

from __future__ import annotations

import torch

from phenoseg.models.zoo import load_model
from phenoseg.phenotype.positivity import PositivityPredictor
from phenoseg.synthetic.cells import nuclei_and_cells
from phenoseg.synthetic.markers import MarkerSettings, render_marker
from phenoseg.training.positivity import f1_score, roc_auc

CLEAR = MarkerSettings(positive_fraction=(0.3, 0.3), negative_ratio=(0.1, 0.1), spread=(0.2, 0.2),
                       background=(0.05, 0.05), spill=(0.05, 0.05), psf_sigma=(0.8, 0.8), photons=(100.0, 100.0),
                       read_noise=(0.01, 0.01), dropout=(0.1, 0.1))


def test_bundled_model_calls_a_clear_marker_at_two_brightness_levels():
    model = load_model("marker_positivity")
    assert model.config.kind == "positivity" and model.config.isab
    nuclei, cells = nuclei_and_cells((320, 320), 120, seed=11)
    pred = PositivityPredictor(model, backend="torch")
    for pattern, gain in (("whole-cell", 1.0), ("nuclear", 40.0)):
        img, positive, _ = render_marker(cells, nuclei, torch.Generator().manual_seed(3), CLEAR, pattern)
        ids, probs = pred.predict((img * gain)[None], cells, 0.5, [0])
        truth = positive[ids]
        assert 0.15 < truth.mean() < 0.5
        p = probs[:, 0]
        assert roc_auc(p, truth) > 0.95, pattern
        assert f1_score(p >= model.config.threshold, truth) > 0.85, pattern

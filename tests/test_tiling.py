"""Tiled inference equals untiled inference, including objects that cross tile seams."""

import numpy as np
from scipy import ndimage as ndi

from phenoseg.evaluation.matching import match_counts, summarise
from phenoseg.inference.segmenter import Segmenter
from phenoseg.inference.tiling import segment_tiled, tile_grid
from phenoseg.synthetic import render_image, synthetic_labels


def test_tile_grid_covers_image_once():
    cover = np.zeros((300, 250), int)
    for y0, y1, x0, x1, ry0, rx0 in tile_grid(300, 250, 128, 20):
        cover[y0:y1, x0:x1] += 1
        assert ry0 == max(0, y0 - 20) and rx0 == max(0, x0 - 20)
    assert (cover == 1).all()


def test_ideal_tile_function_stitches_exactly():
    truth = synthetic_labels((300, 260), 120, seed=2)

    # a "segmenter" that returns the true objects visible in the crop, relabelled (cut objects included)
    calls = []

    def segment_tile(crop: np.ndarray):
        y0, x0 = int(crop[0, 0, 0]), int(crop[1, 0, 0])
        h, w = crop.shape[1:]
        sub = truth[y0 : y0 + h, x0 : x0 + w]
        uniq, inv = np.unique(sub, return_inverse=True)
        lab = inv.reshape(sub.shape) if uniq[0] == 0 else inv.reshape(sub.shape) + 1
        calls.append((y0, x0))
        return lab, np.ones(lab.max())

    yy, xx = np.indices(truth.shape)
    coords = np.stack([yy, xx]).astype(np.float32)  # the crop tells the oracle where it is
    out, _ = segment_tiled(coords, segment_tile, tile=96, overlap=40)
    s = summarise(match_counts(truth, out.astype(np.int64)))
    assert s["f1@0.9"] == 1.0 and len(calls) == 12


def test_tiled_equals_untiled_with_bundled_model():
    truth = synthetic_labels((520, 480), 300, seed=5, radius=(5, 11))
    image = render_image(truth, "fluorescence", seed=5)
    whole = Segmenter("fluorescence_nuclei", "cpu").segment(image, 0.5).labels["nuclei"]
    tiled = Segmenter("fluorescence_nuclei", "cpu", tile_size=192).segment(image, 0.5).labels["nuclei"]
    # some objects cross the seams at multiples of 192 px
    crossing = 0
    for sl in ndi.find_objects(whole.astype(np.int64)):
        if sl is not None and any(s.start // 192 != (s.stop - 1) // 192 for s in sl):
            crossing += 1
    assert crossing > 10
    f1 = summarise(match_counts(whole.astype(np.int64), tiled.astype(np.int64)))["f1@0.5"]
    assert f1 >= 0.995

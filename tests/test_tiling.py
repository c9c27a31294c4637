"""Tiled inference equals untiled inference, including objects that cross tile seams."""

import numpy as np
from scipy import ndimage as ndi

from phenoseg.evaluation.matching import match_counts, summarise
from phenoseg.inference.segmenter import Segmenter
from phenoseg.inference.tiling import plan_tiles, segment_tiled
from phenoseg.synthetic import render_image, synthetic_labels


def test_tile_grid_covers_image_once():
    cover = np.zeros((300, 250), int)
    tiles = plan_tiles(300, 250, 128, 20, stride=8)
    for t in tiles:
        cover[t.cy0 : t.cy1, t.cx0 : t.cx1] += 1
        # read windows have one shape (but for the stride rounding at the far edge), start on the stride grid
        # and hold their core with context
        assert 160 < t.ry1 - t.ry0 <= 168 and 160 < t.rx1 - t.rx0 <= 168 and t.ry0 % 8 == 0 and t.rx0 % 8 == 0
        assert t.ry0 <= max(0, t.cy0 - 20) and t.ry1 >= min(300, t.cy1 + 20)
        assert t.rx0 <= max(0, t.cx0 - 20) and t.rx1 >= min(250, t.cx1 + 20)
    assert (cover == 1).all() and len(tiles) == 6  # balanced cores: 3 rows of 104 px, 2 columns of 128


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
        return lab[None], [np.ones(lab.max())]

    yy, xx = np.indices(truth.shape)
    coords = np.stack([yy, xx]).astype(np.float32)  # the crop tells the oracle where it is
    out, _ = segment_tiled(coords, segment_tile, tile=96, overlap=40)
    s = summarise(match_counts(truth, out[0].astype(np.int64)))
    assert s["f1@0.9"] == 1.0 and len(calls) == 12


def test_tiled_equals_untiled_with_bundled_model():
    truth = synthetic_labels((520, 480), 300, seed=5, radius=(5, 11))
    image = render_image(truth, "fluorescence", seed=5)
    whole = Segmenter("fluorescence_nuclei", device="cpu").segment(image, 0.5).labels["nuclei"]
    tiled = Segmenter("fluorescence_nuclei", device="cpu").segment(image, 0.5, tile_size=192).labels["nuclei"]
    # some objects cross the seams at multiples of 192 px
    crossing = 0
    for sl in ndi.find_objects(whole.astype(np.int64)):
        if sl is not None and any(s.start // 192 != (s.stop - 1) // 192 for s in sl):
            crossing += 1
    assert crossing > 10
    f1 = summarise(match_counts(whole.astype(np.int64), tiled.astype(np.int64)))["f1@0.5"]
    assert f1 >= 0.995


def _disc(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (((yy + 0.5 - centre[0]) ** 2 + (xx + 0.5 - centre[1]) ** 2) < radius**2).astype(np.int32)


def test_upsample_labels_is_smoother_than_nearest():
    from phenoseg.preprocess import resize_labels, upsample_labels

    fine = np.zeros((340, 340), np.int32)
    for k, (cy, cx, r) in enumerate([(60.3, 70.9, 30.2), (200.1, 150.6, 45.5), (110.7, 260.2, 18.4)], 1):
        fine[_disc(fine.shape, (cy, cx), r) > 0] = k
    coarse = resize_labels(fine, (200, 200))  # a non-integer factor (1.7), as for a 0.3 µm/px image
    smooth, blocky = upsample_labels(coarse, fine.shape), resize_labels(coarse, fine.shape)
    def iou(a: np.ndarray, k: int) -> float:
        return float(((a == k) & (fine == k)).sum() / ((a == k) | (fine == k)).sum())

    for k in (1, 2, 3):
        assert iou(smooth, k) > iou(blocky, k)
    assert set(np.unique(smooth)) == {0, 1, 2, 3}
    # exactly twice the size: the bilinear vote is the nearest pixel
    assert np.array_equal(upsample_labels(coarse, (400, 400)), resize_labels(coarse, (400, 400)))
    # shrinking falls back to nearest; equal shape is a no-op
    assert np.array_equal(upsample_labels(fine, (100, 100)), resize_labels(fine, (100, 100)))
    assert upsample_labels(coarse, coarse.shape) is coarse


def test_upsample_labels_bands_match_one_pass():
    from phenoseg.preprocess import upsample_labels

    lab = synthetic_labels((150, 130), 40, seed=4).astype(np.int32)
    one = upsample_labels(lab, (263, 251), rows_per_chunk=10_000)
    assert np.array_equal(one, upsample_labels(lab, (263, 251), rows_per_chunk=7))
    assert set(np.unique(one)) == set(np.unique(lab))


def test_tiles_stitch_the_membership_strength():
    truth = synthetic_labels((300, 260), 120, seed=3)
    field = np.random.default_rng(0).random(truth.shape).astype(np.float32)  # a pixel's "probability"

    def segment_tile(crop: np.ndarray):
        y0, x0 = int(crop[0, 0, 0]), int(crop[1, 0, 0])
        h, w = crop.shape[1:]
        sub = truth[y0 : y0 + h, x0 : x0 + w]
        uniq, inv = np.unique(sub, return_inverse=True)
        lab = inv.reshape(sub.shape) if uniq[0] == 0 else inv.reshape(sub.shape) + 1
        return lab[None], [np.ones(lab.max())], field[None, y0 : y0 + h, x0 : x0 + w] + np.float32(1) * (lab[None] > 0)

    yy, xx = np.indices(truth.shape)
    out, _, strength = segment_tiled(np.stack([yy, xx]).astype(np.float32), segment_tile, tile=96, overlap=40)
    # every pixel carries the value its object's (or, for background, its core's) tile gave it
    np.testing.assert_array_equal(strength[0], (field + 1.0 * (out[0] > 0)).astype(np.float32))


def test_strength_places_outlines_between_model_pixels():
    from phenoseg.preprocess import upsample_labels

    # a disc of radius 13.3 fine px; the model sees it at half resolution with a smooth membership probability
    fine_shape, r = (120, 120), 13.3
    centres = [(40.2, 38.7), (80.6, 83.1)]
    yy, xx = (np.indices((60, 60)) + 0.5) * 2.0  # model pixel centres in fine coordinates
    strength = np.zeros((60, 60), np.float32)
    labels = np.zeros((60, 60), np.int32)
    truth = np.zeros(fine_shape, np.int32)
    for k, (cy, cx) in enumerate(centres, 1):
        p = 1 / (1 + np.exp(-(r - np.hypot(yy - cy, xx - cx)) / 1.5))
        labels[p >= 0.5] = k
        strength = np.maximum(strength, p.astype(np.float32))
        truth[_disc(fine_shape, (cy, cx), r) > 0] = k
    vote = upsample_labels(labels, fine_shape)
    soft = upsample_labels(labels, fine_shape, strength=strength, threshold=0.5)

    def iou(a: np.ndarray, k: int) -> float:
        return float(((a == k) & (truth == k)).sum() / ((a == k) | (truth == k)).sum())

    for k in (1, 2):
        assert iou(soft, k) > iou(vote, k) and iou(soft, k) > 0.97
    # a higher outline level draws the outline further in: smaller objects, never larger
    tight = upsample_labels(labels, fine_shape, strength=strength, threshold=0.5, level=0.8)
    assert (tight > 0).sum() < (soft > 0).sum() and not ((tight > 0) & (soft == 0)).any()
    # bands give the same answer as one pass
    assert np.array_equal(soft, upsample_labels(labels, fine_shape, 7, strength=strength, threshold=0.5))

"""Postprocessing: exact recovery of ideal embeddings, TorchScript equals eager, caps and filters."""

import numpy as np
import torch

from phenoseg.evaluation.matching import match_counts, summarise
from phenoseg.inference.runner import build_decoder
from phenoseg.postprocess.labelling import connected_components, drop_fragments
from phenoseg.postprocess.seeds import find_seeds
from phenoseg.synthetic import ideal_model, ideal_output, synthetic_labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Identical label images up to a renumbering."""
    pairs = set(zip(a.ravel().tolist(), b.ravel().tolist()))
    return len(pairs) == len(np.unique(a)) == len(np.unique(b)) and (0, 0) in pairs


def test_ideal_embeddings_recovered_exactly():
    net = ideal_model()
    decoder = build_decoder(net)
    for seed in range(3):
        truth = synthetic_labels((200, 240), 60, seed=seed)
        assert truth.max() > 25
        pred = decoder(ideal_output(truth, net.config))[0, 0].numpy()
        s = summarise(match_counts(truth, pred))
        assert s["f1@0.5"] == 1.0 and s["f1@0.9"] == 1.0
        assert same_partition(truth, pred)


def test_scripted_equals_eager():
    net = ideal_model()
    decoder = build_decoder(net)
    scripted = torch.jit.script(decoder)
    truth = synthetic_labels((128, 128), 30, seed=5)
    raw = ideal_output(truth, net.config)
    noisy = raw + 0.3 * torch.randn_like(raw, generator=torch.Generator().manual_seed(0))
    for r in (raw, noisy):
        assert torch.equal(decoder(r), scripted(r))
        assert torch.equal(decoder(r, 0.6, 0.4, 10), scripted(r, 0.6, 0.4, 10))


def test_min_area_filter_applies():
    net = ideal_model()
    decoder = build_decoder(net)
    truth = synthetic_labels((128, 128), 30, seed=2)
    raw = ideal_output(truth, net.config)
    areas = np.bincount(truth.ravel())[1:]
    cut = int(np.median(areas))
    pred = decoder(raw, min_area=cut)[0, 0].numpy()
    kept = np.bincount(pred.ravel())[1:]
    assert (kept >= cut).all()
    assert len(kept) == int((areas >= cut).sum())
    assert pred.max() == len(kept)  # labels stay sequential


def test_seed_cap_and_noise():
    g = torch.Generator().manual_seed(1)
    noise = torch.rand(512, 512, generator=g)
    coords, values = find_seeds(noise, 0.5, 2, 300)
    assert coords.shape[0] == 300
    assert bool((values[:-1] >= values[1:]).all())
    # a whole noise map through the decoder stays bounded by the cap
    net = ideal_model()
    decoder = build_decoder(net)
    raw = torch.randn(1, 4, 256, 256, generator=g) * 3
    labels = decoder(raw)[0, 0]
    from phenoseg.postprocess.seeds import max_seeds_for

    assert int(labels.max()) <= max_seeds_for(256, 256, net.config.postprocess_for("nuclei").max_seeds_per_mpx)


def test_empty_and_flat_maps():
    net = ideal_model()
    decoder = build_decoder(net)
    raw = torch.full((2, 4, 64, 64), -10.0)
    out = decoder(raw)
    assert out.shape == (2, 1, 64, 64) and out.dtype == torch.int32 and int(out.max()) == 0


def test_connected_components_and_seed_component():
    a = torch.tensor([0, 2, 5])
    b = torch.tensor([1, 3, 4])
    comp = connected_components(6, a, b)
    assert comp.tolist() == [0, 0, 2, 2, 4, 4]
    lab = torch.zeros(12, 12, dtype=torch.long)
    lab[2:7, 2:7] = 1  # main piece of object 1
    lab[10, 10] = 1  # a far fragment of object 1
    lab[8:11, 0:3] = 2  # a compact object
    out = drop_fragments(lab.reshape(-1), 12, 12).view(12, 12)
    assert out[10, 10] == 0 and int((out == 1).sum()) == 25 and int((out == 2).sum()) == 9


def test_tta_undo_is_exact_and_recovers_ideal_objects():
    from phenoseg.inference.tta import TRANSFORMS, apply, frame_matrix, turn_offsets_back, undo_output

    net = ideal_model()
    cfg = net.config
    truth = synthetic_labels((96, 128), 20, seed=3)
    raw = ideal_output(truth, cfg)
    raws = []
    for k, flip in TRANSFORMS:
        # what a perfect network would output on the transformed image, moved back
        back = undo_output(ideal_output(apply(torch.from_numpy(truth), k, flip).numpy().copy(), cfg), k, flip)
        assert torch.allclose(turn_offsets_back(back, k, flip, cfg), raw)
        raws.append(back)
    frames = [frame_matrix(k, flip) for k, flip in TRANSFORMS]
    decoder = build_decoder(net)
    labels, _ = decoder.decode_tta(raws, frames)
    assert same_partition(truth, labels[0, 0].numpy())
    assert torch.equal(torch.jit.script(decoder).decode_tta(raws, frames)[0], labels)


def test_tta_scores_each_output_in_its_own_frame():
    """With a network and MLP that are not equivariant (as trained models need not be), one transformed
    output decoded through decode_tta must equal decoding it in its own frame and moving the labels back."""
    from phenoseg.inference.tta import TRANSFORMS, apply, frame_matrix, invert, turn_offsets_back, undo_output

    net = ideal_model()
    cfg = net.config
    torch.manual_seed(0)
    with torch.no_grad():  # make membership depend on direction: dx now also feeds the |dy| units
        first = net.mlps[0][0]
        first.weight[:, 1] += 0.5 * first.weight[:, 0].abs().mean() * torch.randn(first.weight.shape[0])
    gen = torch.Generator().manual_seed(1)
    truth = synthetic_labels((64, 80), 12, seed=5)
    decoder = build_decoder(net)
    for k, flip in TRANSFORMS[1:]:
        seen = apply(torch.from_numpy(truth), k, flip).numpy().copy()
        raw_t = ideal_output(seen, cfg)
        raw_t = raw_t + 0.3 * torch.randn(raw_t.shape, generator=gen)  # no plateaus, no symmetry
        own, _ = decoder.decode(raw_t)
        expected = invert(own[0, 0], k, flip).numpy()
        got, _ = decoder.decode_tta([undo_output(raw_t, k, flip)], [frame_matrix(k, flip)])
        assert expected.max() > 3
        assert same_partition(expected, got[0, 0].numpy()), (k, flip)
        # turning the offsets back instead (right only for equivariant models) gives other objects here
        turned = turn_offsets_back(undo_output(raw_t, k, flip), k, flip, cfg)
        wrong, _ = decoder.decode_tta([turned], [torch.eye(2)])
        assert not same_partition(expected, wrong[0, 0].numpy()), (k, flip)


def test_segmenter_tta_runs(rgb_tiff, model_dir):
    from phenoseg.inference.segmenter import Segmenter

    plain = Segmenter(str(model_dir), device="cpu").segment(rgb_tiff)
    tta = Segmenter(str(model_dir), device="cpu", tta=True).segment(rgb_tiff)
    assert tta.labels["nuclei"].shape == plain.labels["nuclei"].shape == (96, 96)


def test_one_piece_per_object_is_keep_largest_parts_in_torch():
    """The scripted pipeline's exact fragment rule gives what the Segmenter's numpy rule gives, ties included."""
    from phenoseg.postprocess.fragments import keep_largest_parts
    from phenoseg.postprocess.labelling import one_piece_per_object
    from phenoseg.synthetic.nuclei import synthetic_labels

    rng = np.random.default_rng(0)
    lab = synthetic_labels((128, 128), 40, seed=2, radius=(3, 7)).astype(np.int32)
    for y, x in rng.integers(0, 126, (30, 2)):  # detached bits of other objects
        lab[y : y + 2, x : x + 2] = rng.integers(1, lab.max() + 1)
    lab[0:2, 0:2] = lab[0:2, 4:6] = lab.max() + 1  # two equal pieces: the first is kept
    out = one_piece_per_object(torch.from_numpy(lab)[None, None])[0, 0].numpy()
    assert np.array_equal(out, keep_largest_parts(lab))
    assert not np.array_equal(out, lab)

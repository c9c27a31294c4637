"""InstanceDecoder: raw network maps → instance label maps. One scriptable module, used everywhere."""

from __future__ import annotations

import torch
from torch import nn

from phenoseg.models.config import PostprocessConfig
from phenoseg.models.instanseg import split_target
from phenoseg.postprocess.labelling import merge_and_label
from phenoseg.postprocess.membership import candidate_pairs, pair_features
from phenoseg.postprocess.pairing import pair_labels
from phenoseg.postprocess.seeds import find_seeds, max_seeds_for


class InstanceDecoder(nn.Module):
    """Seeds → windowed membership → IoU merging → labels, for every target of a model.

    ``forward(raw)`` takes the network output (B, T·(1+Dp+De), H, W) and returns int32 labels
    (B, T, H, W). Thresholds default to the model's and can be overridden per call. Works eagerly
    and under ``torch.jit.script``.
    """

    def __init__(
        self,
        mlps: nn.ModuleList,
        dim_positional: int,
        dim_conditional: int,
        offset_range: float,
        coord_scale: float,
        postprocess: list[PostprocessConfig],
        seed_chunk: int = 256,
        pair: list[int] | None = None,
    ) -> None:
        super().__init__()
        if len(postprocess) != len(mlps):
            raise ValueError("one PostprocessConfig per target (per instance MLP) is needed")
        self.mlps = mlps
        self.dim_positional = dim_positional
        self.dim_conditional = dim_conditional
        self.offset_range = offset_range
        self.coord_scale = coord_scale
        # per target, in target order
        self.seed_thresholds = [float(p.seed_threshold) for p in postprocess]
        self.seed_radii = [int(p.seed_radius) for p in postprocess]
        self.mask_thresholds = [float(p.mask_threshold) for p in postprocess]
        self.iou_thresholds = [float(p.iou_threshold) for p in postprocess]
        self.windows = [int(p.window) for p in postprocess]
        self.max_seeds_per_mpx = [int(p.max_seeds_per_mpx) for p in postprocess]
        self.min_areas = [int(p.min_area_px) for p in postprocess]
        self.cleanups = [bool(p.cleanup_fragments) for p in postprocess]
        self.foreground_thresholds = [float(p.foreground_threshold) for p in postprocess]
        self.seed_chunk = seed_chunk
        # [nuclei, cells] target indices of a nuclei + cells model: their labels are matched (postprocess.pairing)
        # ([-1, -1]: none; a list TorchScript can type)
        self.pair: list[int] = list(pair) if pair is not None else [-1, -1]
        if pair is not None and (len(self.pair) != 2 or max(self.pair) >= len(mlps)):
            raise ValueError("pair= takes the [nuclei, cells] target indices")

    def _paired(self, out: torch.Tensor, all_scores: list[list[torch.Tensor]]
                ) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """Nucleus and cell labels matched one to one (a nucleus carries its cell's id), when the model has both."""
        if self.pair[0] < 0:
            return out, all_scores
        tn, tc = self.pair[0], self.pair[1]
        for i in range(out.shape[0]):
            nuc, cel, ns, cs = pair_labels(out[i, tn], out[i, tc], all_scores[i][tn], all_scores[i][tc])
            out[i, tn] = nuc
            out[i, tc] = cel
            all_scores[i][tn] = ns
            all_scores[i][tc] = cs
        return out, all_scores

    def forward(
        self,
        raw: torch.Tensor,
        seed_threshold: float | None = None,
        mask_threshold: float | None = None,
        min_area: int | None = None,
    ) -> torch.Tensor:
        labels, _ = self.decode(raw, seed_threshold, mask_threshold, min_area)
        return labels

    def _thresholds(
        self, t: int, seed_threshold: float | None, mask_threshold: float | None, min_area: int | None
    ) -> tuple[float, float, int, float]:
        """Target ``t``'s thresholds for this call (a given value overrides the model's for every target):
        (seed, mask, min area, foreground)."""
        st = self.seed_thresholds[t] if seed_threshold is None else seed_threshold
        mt = self.mask_thresholds[t] if mask_threshold is None else mask_threshold
        ma = self.min_areas[t] if min_area is None else min_area
        return st, mt, ma, min(self.foreground_thresholds[t], st)

    @torch.jit.export
    def decode_tta(
        self,
        raws: list[torch.Tensor],
        frames: list[torch.Tensor],
        seed_threshold: float | None = None,
        mask_threshold: float | None = None,
        min_area: int | None = None,
    ) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """Like :meth:`decode` for several outputs of the same image batch (test-time augmentation): each
        output moved back onto the original pixels, and ``frames[i]`` the 2×2 matrix taking an original
        displacement (dy, dx) into the frame output i was computed in (its offsets' frame). Each pair is
        scored in that frame; seed maps are averaged, memberships combined by an element-wise median."""
        labels, scores, _ = self.decode_tta_strength(raws, frames, seed_threshold, mask_threshold, min_area)
        return labels, scores

    @torch.jit.export
    def decode_tta_strength(
        self,
        raws: list[torch.Tensor],
        frames: list[torch.Tensor],
        seed_threshold: float | None = None,
        mask_threshold: float | None = None,
        min_area: int | None = None,
    ) -> tuple[torch.Tensor, list[list[torch.Tensor]], torch.Tensor]:
        """:meth:`decode_tta` plus the membership strength (B, T, H, W) of :meth:`decode_strength`."""
        b, _, h, w = raws[0].shape
        out = torch.zeros(b, len(self.mlps), h, w, dtype=torch.int32, device=raws[0].device)
        strength = torch.zeros(b, len(self.mlps), h, w, dtype=raws[0].dtype, device=raws[0].device)
        all_scores: list[list[torch.Tensor]] = []
        for _ in range(b):
            all_scores.append([])
        for t, mlp in enumerate(self.mlps):
            st, mt, ma, ft = self._thresholds(t, seed_threshold, mask_threshold, min_area)
            cap = max_seeds_for(h, w, self.max_seeds_per_mpx[t])
            parts = [split_target(r, t, self.dim_positional, self.dim_conditional, self.offset_range) for r in raws]
            seed_prob = torch.stack([torch.sigmoid(p[0]) for p in parts]).mean(0)
            for i in range(b):
                centres, values = find_seeds(seed_prob[i], st, self.seed_radii[t], cap)
                owner, pix, dy, dx = candidate_pairs(seed_prob[i] > ft, centres, self.windows[t])
                fy = dy.to(seed_prob.dtype)
                fx = dx.to(seed_prob.dtype)
                scored: list[torch.Tensor] = []
                for j, p in enumerate(parts):
                    m = frames[j].to(seed_prob.dtype)
                    ty = m[0, 0] * fy + m[0, 1] * fx
                    tx = m[1, 0] * fy + m[1, 1] * fx
                    feats = pair_features(p[1][i], p[2][i], centres, owner, pix, ty, tx, self.coord_scale)
                    scored.append(torch.sigmoid(mlp(feats).squeeze(-1)))
                probs = torch.stack(scored)
                ordered = torch.sort(probs, dim=0)[0]
                n = ordered.shape[0]
                median = 0.5 * (ordered[(n - 1) // 2] + ordered[n // 2])
                labels, scores, soft = merge_and_label(owner, pix, median, values, h, w, mt, self.iou_thresholds[t],
                                                       ma, self.cleanups[t])
                out[i, t] = labels
                strength[i, t] = soft
                all_scores[i].append(scores)
        out, all_scores = self._paired(out, all_scores)
        return out, all_scores, strength

    @torch.jit.export
    def decode(
        self,
        raw: torch.Tensor,
        seed_threshold: float | None = None,
        mask_threshold: float | None = None,
        min_area: int | None = None,
    ) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """Labels (B, T, H, W) int32 and, per image and target, each object's seed score (N,)."""
        labels, scores, _ = self.decode_strength(raw, seed_threshold, mask_threshold, min_area)
        return labels, scores

    @torch.jit.export
    def decode_strength(
        self,
        raw: torch.Tensor,
        seed_threshold: float | None = None,
        mask_threshold: float | None = None,
        min_area: int | None = None,
    ) -> tuple[torch.Tensor, list[list[torch.Tensor]], torch.Tensor]:
        """:meth:`decode` plus, per pixel, the highest membership probability of any seed (B, T, H, W): where
        outlines lie between pixels, for placing them on a finer grid (:func:`phenoseg.preprocess.upsample_labels`)."""
        b, _, h, w = raw.shape
        n_targets = len(self.mlps)
        out = torch.zeros(b, n_targets, h, w, dtype=torch.int32, device=raw.device)
        strength = torch.zeros(b, n_targets, h, w, dtype=raw.dtype, device=raw.device)
        all_scores: list[list[torch.Tensor]] = []
        for _ in range(b):
            all_scores.append([])
        for t, mlp in enumerate(self.mlps):
            st, mt, ma, ft = self._thresholds(t, seed_threshold, mask_threshold, min_area)
            cap = max_seeds_for(h, w, self.max_seeds_per_mpx[t])
            seed_logits, offsets, conditional = split_target(
                raw, t, self.dim_positional, self.dim_conditional, self.offset_range
            )
            seed_prob = torch.sigmoid(seed_logits)
            for i in range(b):
                centres, values = find_seeds(seed_prob[i], st, self.seed_radii[t], cap)
                fg = seed_prob[i] > ft
                owners: list[torch.Tensor] = []
                pixels: list[torch.Tensor] = []
                probs: list[torch.Tensor] = []
                for start in range(0, centres.shape[0], self.seed_chunk):
                    chunk = centres[start : start + self.seed_chunk]
                    owner, pix, dy, dx = candidate_pairs(fg, chunk, self.windows[t])
                    feats = pair_features(offsets[i], conditional[i], chunk, owner, pix, dy, dx, self.coord_scale)
                    probs.append(torch.sigmoid(mlp(feats).squeeze(-1)))
                    owners.append(owner + start)
                    pixels.append(pix)
                if len(probs) == 0:
                    all_scores[i].append(torch.zeros(0, device=raw.device))
                    continue
                labels, scores, soft = merge_and_label(
                    torch.cat(owners), torch.cat(pixels), torch.cat(probs), values, h, w,
                    mt, self.iou_thresholds[t], ma, self.cleanups[t],
                )
                out[i, t] = labels
                strength[i, t] = soft
                all_scores[i].append(scores)
        out, all_scores = self._paired(out, all_scores)
        return out, all_scores, strength

"""The classifier's training objective on the generic loop (:mod:`phenoseg.training.loop`).

A step draws objects with weights that flatten the class mix (count^−½ per category: each class, false
detections, silver-only objects), cuts crops 1.5× the field of view, and warps them to the field of view
with a random rotation, flip, scale and shift (masks nearest); colours are jittered per channel. Losses:
cross-entropy of the gold head (label smoothing 0.05), binary cross-entropy of the detection logit, and
cross-entropy of the silver head (weight ``silver_weight``); a missing label (−1) adds nothing.
Validation scores the segmenter's objects on the val images as HoVer-Net does (mean F_c with detections
below 0.5 dropped) and, where the val images have annotated masks, the classifier alone on them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from phenoseg.evaluation.classification import classification_report, hovernet_scores
from phenoseg.phenotype.crops import gather_crops
from phenoseg.training.classifier.data import PAIR_RADIUS_UM, ClassImage


def augment(x: torch.Tensor, n_image: int, out_size: int, gen: torch.Generator) -> torch.Tensor:
    """Warp (B, C, L, L) crops to (B, C, out_size, out_size): random rotation, flip, scale 0.85–1.15 and a
    shift of up to 1.5 px; image channels bilinear, mask channels nearest; then a colour jitter."""
    b, _, size, _ = x.shape
    r = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    theta = r(b) * 2 * math.pi
    scale = (0.85 + 0.3 * r(b)) * out_size / size
    flip = torch.where(r(b) < 0.5, -1.0, 1.0)
    shift = (r(b, 2) - 0.5) * 3.0 / size
    cos, sin = torch.cos(theta) * scale, torch.sin(theta) * scale
    mat = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                       torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(mat, (b, 1, out_size, out_size), align_corners=False)
    img = F.grid_sample(x[:, :n_image], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    masks = F.grid_sample(x[:, n_image:], grid, mode="nearest", padding_mode="zeros", align_corners=False)
    gain = 0.85 + 0.3 * r(b, n_image, 1, 1)
    mix = torch.eye(n_image) + 0.04 * torch.randn(b, n_image, n_image, generator=gen)
    img = torch.einsum("bij,bjhw->bihw", mix, img) * gain + 0.12 * (r(b, n_image, 1, 1) - 0.5)
    img = img + 0.01 * torch.randn(img.shape, generator=gen)
    return torch.cat([img, masks], 1)


def crops_of(images: list[ClassImage], picks: list[tuple[int, int]], size: int, masks: list[str]) -> np.ndarray:
    """Crops of the objects ``picks`` ((image, row) pairs), in order."""
    out = None
    by_image: dict[int, list[int]] = {}
    for k, (i, _) in enumerate(picks):
        by_image.setdefault(i, []).append(k)
    for i, ks in by_image.items():
        im = images[i]
        rows = np.array([picks[k][1] for k in ks])
        for src in np.unique(im.source[rows]):
            sel = rows[im.source[rows] == src]
            pos = np.array(ks)[im.source[rows] == src]
            c = gather_crops(im.image, im.masks[src], im.ids[sel], im.cy[sel], im.cx[sel], size, masks)
            if out is None:
                out = np.zeros((len(picks), *c.shape[1:]), np.float32)
            out[pos] = c
    return out


class ClassifierObjective:
    """Trains a :class:`phenoseg.models.classifier.CropClassifier` on :class:`ClassImage` lists."""

    def __init__(self, net, train: list[ClassImage], val: list[ClassImage], save, batch_size: int = 128,
                 seed: int = 0, silver_weight: float = 0.5) -> None:
        self.net, self.train, self.val, self.save = net, train, val, save
        self.cfg = net.config
        self.batch_size, self.silver_weight = batch_size, silver_weight
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)
        k = len(self.cfg.classes)
        img_of = np.concatenate([np.full(len(im), i) for i, im in enumerate(train)])
        row_of = np.concatenate([np.arange(len(im)) for im in train])
        gold = np.concatenate([im.gold for im in train])
        det = np.concatenate([im.detection for im in train])
        cat = np.where(gold >= 0, gold, np.where(det == 0, k, k + 1))
        counts = np.bincount(cat, minlength=k + 2).astype(float)
        w = 1.0 / np.sqrt(np.maximum(counts[cat], 1))
        self.index = (img_of, row_of)
        self.weights = w / w.sum()
        self.counts = {name: int(c) for name, c in zip([*self.cfg.classes, "not a nucleus", "silver only"], counts)}
        self.big = int(math.ceil(self.cfg.crop_px * 1.5))

    def step(self, step: int) -> dict[str, torch.Tensor]:
        """One batch of augmented crops → losses."""
        picks = self.rng.choice(len(self.weights), self.batch_size, p=self.weights)
        img_of, row_of = self.index
        pairs = [(int(img_of[p]), int(row_of[p])) for p in picks]
        x = torch.from_numpy(crops_of(self.train, pairs, self.big, self.cfg.mask_channels))
        x = augment(x, self.cfg.in_channels, self.cfg.crop_px, self.generator)
        x = x.contiguous(memory_format=torch.channels_last)
        gold = torch.tensor([self.train[i].gold[r] for i, r in pairs])
        det = torch.tensor([self.train[i].detection[r] for i, r in pairs])
        silver = torch.tensor([self.train[i].silver[r] for i, r in pairs])
        logits, silver_logits = self.net.logits_and_silver(x)
        k = len(self.cfg.classes)
        zero = logits.sum() * 0.0
        loss_gold = F.cross_entropy(logits[:, :k], gold, ignore_index=-1, label_smoothing=0.05) \
            if (gold >= 0).any() else zero
        has_det = det >= 0
        loss_det = F.binary_cross_entropy_with_logits(logits[has_det, k], det[has_det].float()) \
            if self.cfg.detection and has_det.any() else zero
        loss_silver = F.cross_entropy(silver_logits, silver, ignore_index=-1, label_smoothing=0.05) \
            if silver_logits is not None and (silver >= 0).any() else zero
        loss = loss_gold + loss_det + self.silver_weight * loss_silver
        return {"loss": loss, "gold": loss_gold, "detection": loss_det, "silver": loss_silver}

    @torch.no_grad()
    def predict_rows(self, im: ClassImage, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class probabilities, detection probability) of rows of one image, no augmentation."""
        self.net.eval()
        k = len(self.cfg.classes)
        probs, det = np.zeros((len(rows), k)), np.zeros(len(rows))
        for s in range(0, len(rows), 512):
            sel = rows[s:s + 512]
            c = crops_of([im], [(0, int(r)) for r in sel], self.cfg.crop_px, self.cfg.mask_channels)
            z = self.net(torch.from_numpy(c).contiguous(memory_format=torch.channels_last))
            probs[s:s + len(sel)] = torch.softmax(z[:, :k], 1).numpy()
            det[s:s + len(sel)] = torch.sigmoid(z[:, k]).numpy()
        return probs, det

    def validate(self) -> tuple[float, dict]:
        """Mean F_c of the segmenter's objects over the val images (HoVer-Net pairing), plus the classifier
        alone on annotated masks."""
        return evaluate_images(self, self.val)

    def save_best(self, details: dict, step: int) -> None:
        """Write the model folder with its validation record."""
        self.cfg.metrics = {"val": details, "step": step}
        self.save(self.net)


def evaluate_images(objective: ClassifierObjective, images: list[ClassImage], threshold: float = 0.5
                    ) -> tuple[float, dict]:
    """HoVer-Net scores of the segmenter's objects (detections ≥ ``threshold``) and the classifier alone on
    annotated masks, pooled over ``images``; the score is the mean F_c."""
    cfg = objective.cfg
    k = len(cfg.classes)
    pooled, alone_true, alone_probs = [], [], []
    point_route = False
    for im in images:
        if im.pred_source >= 0 and im.true_xy is not None:
            rows = np.flatnonzero(im.source == im.pred_source)
            probs, det = objective.predict_rows(im, rows)
            keep = det >= threshold if cfg.detection else np.ones(len(rows), bool)
            cls = probs.argmax(1)
            if im.pred_source == 0:  # point annotations: objects classed "other" are not detections
                point_route = True
                other = cfg.classes.index("other") if "other" in cfg.classes else -1
                keep &= cls != other
            xy = np.stack([im.cx[rows], im.cy[rows]], 1)[keep]
            pooled.append((im.true_xy, im.true_cls, xy, cls[keep]))
        if im.pred_source != 0:
            rows = np.flatnonzero((im.source == 0) & (im.gold >= 0))
            if rows.size:
                probs, _ = objective.predict_rows(im, rows)
                alone_true.append(im.gold[rows])
                alone_probs.append(probs)
    px = cfg.pixel_size_um
    details: dict = {}
    present = [c for c in range(k) if any((p[1] == c).any() for p in pooled)]
    if pooled:
        s = hovernet_scores(pooled, present, PAIR_RADIUS_UM / px)
        s["f_c"] = {cfg.classes[int(c)]: v for c, v in s["f_c"].items()}
        details["segmenter"] = s
    if alone_true:
        details["annotated_masks"] = classification_report(np.concatenate(alone_true), np.concatenate(alone_probs),
                                                           list(cfg.classes))
    details["point_route"] = point_route
    score = details["segmenter"]["f_c_mean"] if pooled else details.get("annotated_masks", {}).get("macro_f1", 0.0)
    objective.net.train()
    return float(score), details

"""Test-time augmentation (method §1.6): the 8 flips / 90° rotations.

Each transformed image goes through the network; its output maps are moved back pixel by pixel, but the
positional offsets stay vectors of the transformed frame. Each (seed, pixel) pair is then scored in the
frame the network saw: its displacement is turned into that frame (:func:`frame_matrix`) before the
instance MLP, exactly as when the transformed image is decoded on its own. (Turning the offsets back
instead is only right for a network and MLP that are equivariant, which training does not enforce: a
model may use the conditional channels in an orientation-dependent way.) Seed maps are averaged; each
membership is the element-wise median over the 8 outputs.
"""

from __future__ import annotations

import torch

from phenoseg.models.config import ModelConfig

TRANSFORMS: list[tuple[int, bool]] = [(k, flip) for flip in (False, True) for k in range(4)]


def apply(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """The transform: optional flip along x, then k × 90° rotation (of the last two axes)."""
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, k, (-2, -1))


def invert(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Undo :func:`apply` on a map (pixels only)."""
    x = torch.rot90(x, -k, (-2, -1))
    return x.flip(-1) if flip else x


def vector_map(k: int, flip: bool) -> torch.Tensor:
    """2×2 matrix taking a (dy, dx) vector from the transformed frame back to the original frame."""
    size = 7
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    ty, tx = apply(yy, k, flip), apply(xx, k, flip)  # original coordinates seen at each transformed pixel
    c = size // 2
    return torch.tensor([[ty[c + 1, c] - ty[c, c], ty[c, c + 1] - ty[c, c]],
                         [tx[c + 1, c] - tx[c, c], tx[c, c + 1] - tx[c, c]]])


def frame_matrix(k: int, flip: bool) -> torch.Tensor:
    """2×2 matrix taking a (dy, dx) displacement of the original frame into the transformed frame."""
    return vector_map(k, flip).t().contiguous()  # a signed permutation: its inverse is its transpose


def undo_output(raw: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Move raw network maps of a transformed image back onto the original pixels (values unchanged: the
    offsets remain vectors of the transformed frame; pass :func:`frame_matrix` to the decoder)."""
    return invert(raw, k, flip).contiguous()


def turn_offsets_back(raw: torch.Tensor, k: int, flip: bool, config: ModelConfig) -> torch.Tensor:
    """The offsets of an :func:`undo_output` result expressed in the original frame (what an equivariant
    network would have output on the original image)."""
    out = raw.clone()
    m = vector_map(k, flip)
    per = config.head_channels
    for t in range(len(config.targets)):
        p = raw[:, t * per + 1 : t * per + 3]
        # offsets are odd functions of the raw value (sigmoid − ½), so signs and swaps apply to raw channels
        out[:, t * per + 1] = m[0, 0] * p[:, 0] + m[0, 1] * p[:, 1]
        out[:, t * per + 2] = m[1, 0] * p[:, 0] + m[1, 1] * p[:, 1]
    return out

"""Cost of the robust normalisation next to the plain percentile one it replaced, side by side in one run.

The plain one: per-channel 0.1 / 99.9 percentiles by ``torch.quantile`` on the same sample, then scaling.
The robust one (:mod:`phenoseg.normalise`): statistics of the trusted values, fill, despeckle, clamp, scale.
Timed on a 2048 × 2240 RGB tiling of the bundled H&E example and on a 16-bit fluorescence-like field with
0.2 % hot pixels. Run: `python benchmarks/normalise_speed.py` → results/normalise_speed.json
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from common import machine, median_time, write_result

from phenoseg.io.images import read_image
from phenoseg.normalise import normalisation_stats, normalise_with, scale_channels

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "he_dsb2018.tif"


def plain(x: np.ndarray) -> np.ndarray:
    """The replaced normalisation: plain percentiles of the strided sample, then scaling."""
    t = torch.from_numpy(x)
    h, w = t.shape[-2:]
    s = t[:, :: max(1, h // 1024), :: max(1, w // 1024)].reshape(t.shape[0], -1).to(torch.float64)
    lo, hi = torch.quantile(s, torch.tensor([0.001, 0.999], dtype=torch.float64), dim=1)
    return scale_channels(t, lo, hi).numpy()


def main() -> None:
    torch.set_num_threads(2)
    he = np.tile(read_image(EXAMPLE).data, (1, 8, 7)).astype(np.float32)
    rng = np.random.default_rng(0)
    fl = rng.gamma(2.0, 200.0, (1, 2048, 2048)).astype(np.float32)
    fl[:, rng.integers(0, 2048, 8400), rng.integers(0, 2048, 8400)] = 65535
    rows = []
    for name, x in (("he_rgb_2048x2240", he), ("fluo_16bit_2048_hot_pixels", fl)):
        mp = x.shape[1] * x.shape[2] / 1e6
        pairs = []
        for _ in range(5):  # interleaved
            a, _ = median_time(lambda x=x: plain(x), repeats=1, warmup=0)
            b, _ = median_time(lambda x=x: normalise_with(x, normalisation_stats(x)), repeats=1, warmup=0)
            pairs.append((a, b))
        a = float(np.median([p[0] for p in pairs]))
        b = float(np.median([p[1] for p in pairs]))
        rows.append({"image": name, "megapixels": round(mp, 2), "channels": int(x.shape[0]),
                     "plain_s": round(a, 3), "robust_s": round(b, 3), "extra_s_per_mp": round((b - a) / mp, 4),
                     "ratio": round(b / a, 2)})
        print(rows[-1], flush=True)
    print(write_result("normalise_speed", {"machine": machine(), "rows": rows}))


if __name__ == "__main__":
    main()

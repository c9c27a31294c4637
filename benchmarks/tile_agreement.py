"""Tiled = untiled? The 2048² H&E mosaic (segment_speed.py) segmented whole and in tiles of 1024 and 512 px
(issue 17: nucleus models on the CPU now tile in-memory images at 1024 px), scored one against the other.

    python benchmarks/tile_agreement.py   → results/tile_agreement.json
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402
from segment_speed import he_mosaic  # noqa: E402

import phenoseg.inference.segmenter as segmenter_module  # noqa: E402
from phenoseg.evaluation.matching import match_counts, summarise  # noqa: E402
from phenoseg.inference.segmenter import Segmenter  # noqa: E402


def main() -> None:
    mosaic, source = he_mosaic()
    data = np.moveaxis(mosaic, -1, 0)
    seg = Segmenter("brightfield_nuclei", device="cpu")
    default = segmenter_module.MEMORY_TILE
    segmenter_module.MEMORY_TILE = 10**6  # untiled: the whole image in one pass
    whole = seg.segment(data, 0.5).labels["nuclei"]
    segmenter_module.MEMORY_TILE = default
    out = {}
    for tile in ("default", 1024, 512):
        tiled = seg.segment(data, 0.5, tile_size=None if tile == "default" else tile).labels["nuclei"]
        s = summarise(match_counts(whole, tiled))
        out[str(tile)] = {"objects_untiled": int(whole.max()), "objects_tiled": int(tiled.max()),
                          "f1@0.5": s["f1@0.5"], "f1_mean": s["f1_mean"],
                          "equal_foreground_pixels": float(np.mean((whole > 0) == (tiled > 0)))}
        print(tile, out[str(tile)], flush=True)
    print("wrote", write_result("tile_agreement", {"image": source, "size": list(whole.shape), "tiles": out}))


if __name__ == "__main__":
    main()

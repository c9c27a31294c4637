"""InstanSeg postprocessing as batched torch operations (TorchScript-compatible).

The same code serves training-time validation, inference and the TorchScript export.
"""

from phenoseg.postprocess.decoder import InstanceDecoder
from phenoseg.postprocess.labelling import merge_and_label
from phenoseg.postprocess.membership import candidate_pairs, pair_features, relative_grid, window_features
from phenoseg.postprocess.seeds import find_seeds, max_seeds_for

__all__ = [
    "InstanceDecoder",
    "find_seeds",
    "max_seeds_for",
    "merge_and_label",
    "candidate_pairs",
    "pair_features",
    "relative_grid",
    "window_features",
]

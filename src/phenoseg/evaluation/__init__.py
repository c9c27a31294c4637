"""Matching-based instance segmentation metrics (StarDist's `matching` conventions)."""

from phenoseg.evaluation.matching import (
    THRESHOLDS,
    MatchCounts,
    match_counts,
    summarise,
)

__all__ = ["THRESHOLDS", "MatchCounts", "match_counts", "summarise"]

"""`phenoseg cluster-metrics TABLE.csv... [--json FILE]`: label-free clustering metrics of cell tables."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def _fmt(v: float) -> str:
    return "–" if not math.isfinite(v) else f"{v:.3f}"


def _json_safe(v):
    """NaN (undefined with one cluster) as null: JSON has no NaN."""
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_safe(x) for x in v]
    return None if isinstance(v, float) and not math.isfinite(v) else v


def run(args: argparse.Namespace) -> int:
    """Print one line per table and their mean; write JSON when asked."""
    from phenoseg.errors import PhenosegError
    from phenoseg.evaluation.cluster_metrics import tables_metrics

    try:
        res = [float(r) for r in args.resolutions.split(",") if r.strip()]
    except ValueError:
        raise PhenosegError(f"--resolutions {args.resolutions}: expected numbers, e.g. 0.05,0.10,0.15") from None
    if not res or any(r <= 0 for r in res):
        raise PhenosegError(f"--resolutions {args.resolutions}: expected positive numbers")
    if args.neighbours < 2:
        raise PhenosegError(f"--neighbours {args.neighbours}: must be at least 2")
    chans = [c.strip() for c in args.channels.split(",") if c.strip()] if args.channels else None
    out = tables_metrics(args.tables, chans, res, args.neighbours)
    print("table\tcells\tDavies-Bouldin (lower better)\tSilhouette\tCalinski-Harabasz")
    for name, m in out["images"].items():
        mm = m["mean"]
        print(f"{name}\t{m['cells']}\t{_fmt(mm['davies_bouldin'])}\t{_fmt(mm['silhouette'])}\t"
              f"{_fmt(mm['calinski_harabasz'])}")
    mm = out["mean"]
    print(f"mean\t\t{_fmt(mm['davies_bouldin'])}\t{_fmt(mm['silhouette'])}\t{_fmt(mm['calinski_harabasz'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(_json_safe(out), indent=2))
        print(f"→ {args.json}")
    return 0

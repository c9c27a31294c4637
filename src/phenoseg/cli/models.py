"""`phenoseg models`: the bundled models."""

from __future__ import annotations

import argparse
import json


def run(args: argparse.Namespace) -> int:
    """`phenoseg models`."""
    from phenoseg.models.zoo import list_models

    rows = list_models()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no bundled models")
    for r in rows:
        use = "" if r["commercial_use"] else " (non-commercial use only: trained on non-commercial data)"
        print(f"{r['name']:<24} {r['modality']:<13} {r['pixel_size_um']:g} µm/px  channels: {', '.join(r['channels'])}"
              f"  targets: {', '.join(r['targets'])}  weights licence: {r['license']}{use}")
    return 0

"""`phenoseg`: dispatch to a subcommand, one-line errors in flag words, exit codes."""

from __future__ import annotations

import importlib
import re
import sys
import traceback

from phenoseg.cli.parser import build_parser
from phenoseg.errors import PhenosegError

# subcommand → module in phenoseg.cli with a run(args) function
COMMANDS = {"segment": "segment", "evaluate": "evaluate", "train": "train", "measure": "measure",
            "export": "export", "models": "models", "classify": "classify", "train-classifier": "train_classifier",
            "train-positivity": "train_positivity", "positivity": "positivity", "cluster-metrics": "cluster_metrics"}
# library parameter words → the flags a command-line user types
FLAGS = {
    "pixel_size_um": "--pixel-size", "tile_size": "--tile-size", "regions": "--regions", "channels": "--channels",
    "backend": "--backend", "device": "--device", "model": "--model", "seed_threshold": "--seed-threshold",
    "mask_threshold": "--mask-threshold", "min_area": "--min-area", "outputs": "--outputs", "dask": "--dask",
    "workers": "--workers", "threads_per_task": "--threads-per-task", "axes": "--axes", "init": "--init",
    "grow": "--grow", "resume": "--resume", "targets": "--targets", "data_pixel_size": "--data-pixel-size",
    "out": "--out", "overwrite": "--overwrite", "recursive": "--recursive", "classify": "--classify",
    "min_detection_probability": "--min-detection-probability", "silver": "--silver", "teacher": "--teacher",
    "data": "--data", "positivity": "--positivity", "positivity_threshold": "--positivity-threshold",
}
_PARAM = re.compile(r"\b(" + "|".join(FLAGS) + r")=")


def to_flags(message: str) -> str:
    """A library message with ``name=`` parameter words turned into the CLI's ``--flag`` words
    (``grow=:`` → ``--grow:``, ``tile_size=8`` → ``--tile-size 8``)."""
    def flag(m: re.Match) -> str:
        rest = message[m.end():m.end() + 1]
        return FLAGS[m.group(1)] + ("" if rest in (":", "", " ") else " ")

    return _PARAM.sub(flag, message)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 some inputs failed, 2 usage or fatal error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    import logging

    # unreadable files are reported once, by phenoseg; tifffile's own log lines would repeat them
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)
    try:
        module = importlib.import_module(f"phenoseg.cli.{COMMANDS[args.command]}")
        return module.run(args)
    except PhenosegError as exc:
        print(f"phenoseg: error: {to_flags(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("phenoseg: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: one line, traceback only with --debug
        if args.debug:
            traceback.print_exc()
        print(f"phenoseg: unexpected error: {type(exc).__name__}: {exc} (rerun with --debug for details)",
              file=sys.stderr)
        return 3

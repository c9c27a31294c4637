"""The end of a batch on the command line: failures listed in flag words, the exit code."""

from __future__ import annotations

import sys
from pathlib import Path

from phenoseg.batch import Reporter
from phenoseg.cli.main import to_flags


def reporter(args) -> Reporter:
    """Messages of a batch, quiet with ``--quiet``, in the CLI's flag words."""
    return Reporter(getattr(args, "quiet", False), to_flags)


def finish(rep: Reporter, files: list[Path], failures: list[tuple[Path, str]]) -> int:
    """List failures (exit 1) or say done (exit 0)."""
    if failures:
        print(f"phenoseg: {len(failures)} of {len(files)} input(s) failed:", file=sys.stderr)
        for path, msg in failures:
            msg = to_flags(msg)
            print(f"  {msg}" if msg.startswith(str(path)) else f"  {path}: {msg}", file=sys.stderr)
        return 1
    rep.say(f"done: {len(files)} image(s)")
    return 0

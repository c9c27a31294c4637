"""The `phenoseg` command line: :mod:`.parser` (flags), :mod:`.main` (dispatch, errors, exit codes), one
module per subcommand, and :mod:`.summary` (the end of a batch)."""

from phenoseg.cli.main import main

__all__ = ["main"]

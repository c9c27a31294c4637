"""`python -m phenoseg` runs the command-line interface."""

import sys

from phenoseg.cli import main

sys.exit(main())

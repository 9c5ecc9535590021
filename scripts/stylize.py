"""Alias of the ``reconet-stylize`` console script: ``python scripts/stylize.py --help``."""

import sys

from reconet.cli.stylize import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m reconet.app``: the same as ``reconet-app``."""

import sys

from reconet.cli.app import main

sys.exit(main())

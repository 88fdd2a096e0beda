"""``python -m argus.cli``."""

import sys

from argus.cli.main import main

sys.exit(main())

"""``python -m lrdoctor``."""

import sys

from lrdoctor.cli import main

sys.exit(main())

"""``python -m mempolicy`` is the ``mempolicy`` command."""

import sys

from mempolicy.cli import main

sys.exit(main())

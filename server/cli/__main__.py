"""``python -m server.cli``: the ``alphanode`` command."""

import sys

from . import main

sys.exit(main())

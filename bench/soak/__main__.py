"""``python -m bench.soak``: see the package's docstring."""

from bench.soak.run import main

raise SystemExit(main())

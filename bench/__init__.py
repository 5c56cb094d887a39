"""The benchmark suite: ``make bench`` (see ``bench/README.md`` and ``bench/run.py``)."""

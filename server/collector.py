"""The cyclic garbage collector while a server runs: the same for the API and the benchmark's baseline.

A page of 100 posts builds thousands of objects that live until its response is
written, so with Python's default thresholds (700, 10, 10) a request set off a few
young-generation collections, and every few hundred requests a full one over
everything the process had loaded (the schema, the fact index's objects): about a
tenth of a listing's CPU time (``bench/profile.py``). Requests leave no cycles
behind (checked with ``gc.DEBUG_SAVEALL``), so collecting less often costs no
memory; what start-up built is frozen out of the full collections altogether.

This module imports nothing of the application, so that the hand-written baseline
(``bench/handwritten.py``) runs under the same collector settings without building
the schema: the ratio of the two then measures GraphQL, not the collector.
"""

from __future__ import annotations

import gc

THRESHOLDS = (20_000, 10, 10)


def settle() -> None:
    """Collect once, freeze what start-up built, and collect less often from now on.

    Call it last in start-up: what is built after it is not frozen.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


def release() -> None:
    """On stop: what start-up froze goes back to the collector."""
    gc.unfreeze()

"""The benchmark's hand-written baseline answers as the API does, and runs under the same collector settings.

The headline figure of ``bench/`` is the API's requests per second over this
endpoint's: it only measures the GraphQL layer if both return the same JSON from
the same SQL and run in the same conditions.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bench import handwritten, workload
from loaders import ReadPool
from server.app import create_app
from server.collector import THRESHOLDS
from server.settings import Settings
from tests.factories import import_paths

SIZES = workload.Sizes(
    post_page=12, listing_pages=4, filtered_listing=4, search=4, facets=2, entity_page=2, sample_posts=40
)


@pytest.fixture
def store(database_url: str, corpus: Path) -> str:
    """The test corpus in a new store of the dialect under test."""
    import_paths(database_url, corpus)
    return database_url


def _bodies_and_checks(url: str) -> tuple[workload.Workloads, dict[str, workload.Comparison]]:
    async def run() -> tuple[workload.Workloads, dict[str, workload.Comparison]]:
        pool = await ReadPool.open(url, 2)
        try:
            bodies = await workload.build(pool, SIZES, seed=5)
            _, comparisons = await workload.check(pool, bodies)
            return bodies, comparisons
        finally:
            await pool.close()

    return asyncio.run(run())


def test_same_data_from_the_same_statements(store: str) -> None:
    bodies, comparisons = _bodies_and_checks(store)
    assert bodies.failures == {}
    assert set(comparisons) == set(workload.HANDWRITTEN_OPERATIONS)
    for operation, comparison in comparisons.items():
        assert comparison.compared == len(bodies.bodies[operation]) > 1, operation
        assert comparison.ok, (operation, comparison)
        assert comparison.identical_bytes == comparison.compared, (operation, comparison)


def test_same_bytes_over_http_under_the_same_collector(store: str) -> None:
    bodies, _ = _bodies_and_checks(store)
    before = gc.get_threshold()
    try:
        with TestClient(create_app(Settings(database_url=store, cache=False))) as api:
            expected = {
                op: [api.post("/graphql", json=b).content for b in bodies.bodies[op]]
                for op in workload.HANDWRITTEN_OPERATIONS
            }
        assert gc.get_freeze_count() == 0
        gc.set_threshold(*before)
        with TestClient(handwritten.create_app(Settings(database_url=store))) as baseline:
            assert gc.get_threshold() == THRESHOLDS
            assert gc.get_freeze_count() > 0
            for operation, answers in expected.items():
                got = [baseline.post("/graphql", json=b).content for b in bodies.bodies[operation]]
                assert got == answers, operation
            refused = baseline.post("/graphql", json={"query": "{ x }", "operationName": "Other"})
            assert refused.status_code == 400
        assert gc.get_freeze_count() == 0
    finally:
        gc.set_threshold(*before)

"""Fixtures of the server's tests: private real parts (tests/parts) they start and stop themselves."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.parts.redis import persistent_redis_server, redis_server
from tests.server.caching import delete_redis_keys

__all__ = ["persistent_redis_server", "redis_server"]


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own; every key under it is deleted afterwards."""
    prefix = f"alphanode-test-{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        delete_redis_keys(prefix)

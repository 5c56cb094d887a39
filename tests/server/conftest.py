"""Fixtures of the server's tests: private real parts (tests/parts) they start and stop themselves."""

from tests.parts.redis import persistent_redis_server, redis_server

__all__ = ["persistent_redis_server", "redis_server"]

"""Redis for the service, behind a circuit breaker: Redis is an optimization, never a requirement.

The first call that fails (refused, reset, or slower than ``ALPHANODE_REDIS_TIMEOUT``) marks
Redis down; from then on nothing touches it while a background task probes it twice a second.
When it answers again, each registered ``Recovery`` (the response cache, persisted queries)
catches it up, told whether Redis restarted (a new ``run_id``) and may have come back with an
older dataset; only then is it used again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from store.background import stop_task

log = logging.getLogger("alphanode.cache")

T = TypeVar("T")


class CacheUnavailable(Exception):
    """Redis cannot be used now (down, or it just failed): go on without it."""


class RedisRestarted(RedisConnectionError):
    """Redis answers with another run_id: it restarted, perhaps with an older dataset."""


class Recovery(Protocol):
    """What catches Redis up before the breaker closes (the response cache, persisted queries)."""

    def pending(self) -> bool: ...

    async def recover(self, restarted: bool) -> None: ...


def _run_id_of(info: Any) -> str | None:
    """The ``run_id`` of an ``INFO server`` reply (parsed or raw), or None."""
    if isinstance(info, dict):
        found = info.get("run_id")
        return str(found) if found is not None else None
    text = info.decode("utf-8", "replace") if isinstance(info, bytes | bytearray) else str(info)
    for line in text.splitlines():
        if line.startswith("run_id:"):
            return line.partition(":")[2].strip()
    return None


class RedisLink:
    """One Redis client for the service, behind a circuit breaker.

    While Redis answers, ``call`` runs each command (with short socket and connect
    timeouts, and no retries). The first that fails marks Redis down: ``call`` then
    raises ``CacheUnavailable`` at once, without touching Redis, and a background task
    PINGs it every ``probe_interval`` seconds. When it answers, each registered
    ``Recovery`` catches it up (told whether Redis restarted, which its ``run_id`` says)
    and only then is Redis used again. While up, the task compares ``run_id`` every
    ``check_interval`` seconds, and each new connection compares it too, so that a Redis
    that restarted between two calls (perhaps with an older dataset) counts as down.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 0.5,
        probe_interval: float = 0.5,
        check_interval: float = 5.0,
        on_error: Callable[[str], None] | None = None,
        on_state: Callable[[bool], None] | None = None,
    ) -> None:
        from redis import asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.client: Any = aioredis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            redis_connect_func=self._on_connect,
        )
        self.timeout = timeout
        self.probe_interval = probe_interval
        self.check_interval = check_interval
        self.up = True
        self.run_id: str | None = None  # of the Redis last seen answering
        self.errors: Counter[str] = Counter()  # failed calls, by operation
        self.outages = 0
        self._failures: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self._on_error = on_error
        self._on_state = on_state
        self._recoveries: list[Recovery] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def add_recovery(self, recovery: Recovery) -> None:
        """Have ``recovery`` catch Redis up each time it answers again, before it is used."""
        self._recoveries.append(recovery)

    async def start(self) -> None:
        """Learn which Redis answers (or that none does) and start watching it."""
        try:
            self.run_id = await self._fetch_run_id()
        except self._failures as exc:
            self.failed("check", exc)
        self._ensure_watching()

    async def stop(self) -> None:
        """Stop watching and close the connections."""
        await stop_task(self._task)
        self._task = None
        await self.client.aclose()

    async def call(self, operation: str, command: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``command(*args, **kwargs)`` on Redis; CacheUnavailable when Redis is down or the call fails."""
        if not self.up:
            raise CacheUnavailable(operation)
        try:
            return await command(*args, **kwargs)
        except self._failures as exc:
            self.failed(operation, exc)
            raise CacheUnavailable(operation) from exc

    def failed(self, operation: str, exc: BaseException) -> None:
        """Count a failed call and mark Redis down."""
        self.errors[operation] += 1
        if self._on_error is not None:
            self._on_error(operation)
        self._down(type(exc).__name__)

    def _down(self, reason: str) -> None:
        if not self.up:
            return
        self.up = False
        self.outages += 1
        log.warning("Redis is down (%s): serving without it until it answers again", reason)
        if self._on_state is not None:
            self._on_state(False)
        self._ensure_watching()
        self._wake.set()

    def _ensure_watching(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch(), name="redis-watch")

    async def _watch(self) -> None:
        while True:
            try:
                if self.up:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.check_interval)
                    if self.up:
                        await self._check()
                else:
                    await asyncio.sleep(self.probe_interval)
                    await self._probe()
            except asyncio.CancelledError:
                raise
            except Exception:  # never stop watching
                log.exception("watching Redis failed; going on")
                await asyncio.sleep(self.probe_interval)

    async def _check(self) -> None:
        """While up: a Redis with another run_id restarted, and may hold an older dataset."""
        try:
            run_id = await self._fetch_run_id()
        except self._failures as exc:
            self.failed("check", exc)
            return
        if self.run_id is None:
            self.run_id = run_id
        elif run_id != self.run_id:
            self._down("RedisRestarted")

    async def _probe(self) -> None:
        """While down: if Redis answers, catch it up, then close the breaker."""
        try:
            await self.client.ping()
            run_id = await self._fetch_run_id()
            restarted = run_id is None or run_id != self.run_id
            while True:
                for recovery in self._recoveries:
                    await recovery.recover(restarted)
                restarted = False
                # Purges may have come in while catching up: close only once none waits.
                if not any(recovery.pending() for recovery in self._recoveries):
                    break
        except asyncio.CancelledError:
            raise
        except self._failures as exc:
            log.debug("Redis still down (%s)", type(exc).__name__)
            return
        except Exception:
            log.exception("catching Redis up failed; retrying")
            return
        self.run_id = run_id
        self.up = True
        # As loud as "Redis is down": an operator who saw that line sees this one.
        log.warning("Redis answers again: using it again")
        if self._on_state is not None:
            self._on_state(True)

    async def _fetch_run_id(self) -> str | None:
        try:
            return _run_id_of(await self.client.info("server"))
        except ResponseError:  # INFO refused (a managed Redis, say): no way to tell a restart
            return None

    async def _on_connect(self, connection: Any) -> None:
        """Each new connection: the usual handshake, then, while up, the run_id check."""
        await connection.on_connect()
        if not self.up or self.run_id is None:
            return  # recovering (the probe checks), or nothing to compare with
        try:
            await connection.send_command("INFO", "server")
            run_id = _run_id_of(await connection.read_response())
        except ResponseError:
            return
        if run_id != self.run_id:
            raise RedisRestarted("Redis restarted since it was last seen")

"""Response time, made visible: Server-Timing, Prometheus metrics, one JSON log line per request.

Tokens never reach any of them: the log line names the viewer's token by its
name only.

Metrics of one process are kept in its memory. Workers of one instance (``alphanode serve
--workers N``) keep theirs in files of a folder they share instead, prometheus-client's
multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR``, which the serve command sets before the
workers start (the library reads it once, when it is first imported), so that ``/metrics``,
whichever worker answers it, adds up the instance's. Counters and histograms are summed over
every worker the instance has run, those that died included; a gauge is combined over the
workers alive (``multiprocess_mode``), the files of dead ones being removed at the next scrape.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import time
from dataclasses import dataclass, field

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

log = logging.getLogger("alphanode.request")

# Buckets in seconds, from a cache hit to a slow facet query.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
STATEMENT_BUCKETS = (0, 1, 2, 3, 5, 8, 13, 21, 34)


@dataclass(slots=True)
class RequestStats:
    """What one request did, filled in as it goes."""

    started: float = field(default_factory=time.perf_counter)
    operation: str | None = None
    kind: str = "query"  # query, mutation, or "-" before the operation is known
    cache: str = "bypass"  # hit, miss, bypass
    parse: float = 0.0
    validate: float = 0.0
    execute: float = 0.0
    db: float = 0.0
    statements: int = 0
    status: int = 200
    viewer: str | None = None
    persisted: bool = False
    error_code: str | None = None
    post_ids: set[int] = field(default_factory=set)  # posts the response holds
    lists: bool = False  # the response lists, counts or searches posts

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def server_timing(self) -> str:
        """The Server-Timing header: durations in milliseconds."""
        parts = [
            f"parse;dur={self.parse * 1000:.2f}",
            f"validate;dur={self.validate * 1000:.2f}",
            f"execute;dur={self.execute * 1000:.2f}",
            f'db;dur={self.db * 1000:.2f};desc="{self.statements} statements"',
            f'cache;desc="{self.cache}"',
            f"total;dur={self.elapsed() * 1000:.2f}",
        ]
        return ", ".join(parts)


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The library reads the variable once, when it is first imported (just above), and keeps every
# value in that folder's files from then on if it was set: what it saw is read here, at the same
# moment, rather than from the library's private state.
_FOLDER_AT_IMPORT = os.environ.get(MULTIPROC_ENV) or None


def multiprocess_dir() -> str | None:
    """The folder of the workers' metrics when this process keeps its metrics there, else None.

    The library chose where values live when it was imported: with the variable set later, this
    process's metrics are in its memory, and it reports them alone.
    """
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder or folder != _FOLDER_AT_IMPORT:
        return None
    return folder


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (one per app); with several
    workers, in the workers' shared folder, added up over them at each scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.folder = multiprocess_dir()
        self._requests()
        self._caches()
        self._replica()

    def _requests(self) -> None:
        self.duration = Histogram(
            "alphanode_request_duration_seconds",
            "GraphQL request duration, by operation name, kind and cache result.",
            ("operation", "kind", "cache"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.statements = Histogram(
            "alphanode_request_sql_statements",
            "SQL statements a GraphQL request ran.",
            ("operation",),
            buckets=STATEMENT_BUCKETS,
            registry=self.registry,
        )
        self.cache = Counter(
            "alphanode_response_cache_total", "Response cache look-ups, by result.", ("result",), registry=self.registry
        )
        self.responses = Counter(
            "alphanode_responses_total", "GraphQL responses, by HTTP status.", ("status",), registry=self.registry
        )
        self.executor_errors = Counter(
            "alphanode_executor_errors_total",
            "Unexpected exceptions in the batched executor, answered as errors (not run again).",
            registry=self.registry,
        )
        self.imports = Counter(
            "alphanode_import_documents_total",
            "Documents imported through this server, by outcome.",
            ("outcome",),
            registry=self.registry,
        )

    def _caches(self) -> None:
        self.purged = Counter(
            "alphanode_cache_purged_keys_total", "Surrogate keys purged from the cache.", registry=self.registry
        )
        self.varnish_purges = Counter(
            "alphanode_varnish_purges_total",
            "PURGE requests sent to Varnish (ALPHANODE_VARNISH_PURGE_URLS), by result: ok or failed.",
            ("result",),
            registry=self.registry,
        )
        self.cache_errors = Counter(
            "alphanode_cache_errors_total",
            "Calls to the cache backend (Redis) that failed, by operation.",
            ("operation",),
            registry=self.registry,
        )
        # Of an instance's workers: 0 when any of them finds the backend down.
        self.cache_up = Gauge(
            "alphanode_cache_up",
            "1 while the cache backend answers (the in-process cache always does), 0 while it is down.",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.cache_up.set(1)
        # Each worker has a cache of its own: the instance holds their sum.
        self.cache_bytes = Gauge(
            "alphanode_response_cache_bytes",
            "Bytes of response bodies the in-process cache holds (bounded by ALPHANODE_CACHE_MAX_BYTES).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.cache_entries = Gauge(
            "alphanode_response_cache_entries",
            "Responses the in-process cache holds.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )

    def _replica(self) -> None:
        # Of an instance's workers: the largest lag any of them measured; -1 while none knows it.
        self.replica_lag = Gauge(
            "alphanode_replica_lag_seconds",
            "Seconds the read replica is behind the primary (ALPHANODE_READ_DATABASE_URL); -1 while it is down.",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.replica_used = Gauge(
            "alphanode_replica_reads_up",
            "1 while public reads go to the read replica, 0 while they go to the primary.",
            registry=self.registry,
            multiprocess_mode="livemin",
        )
        self.public_reads = Counter(
            "alphanode_public_reads_total",
            "Public requests with a read replica configured, by where they read: replica or primary.",
            ("target",),
            registry=self.registry,
        )

    def observe(self, stats: RequestStats) -> None:
        operation = stats.operation or "-"
        self.duration.labels(operation, stats.kind, stats.cache).observe(stats.elapsed())
        self.statements.labels(operation).observe(stats.statements)
        self.responses.labels(str(stats.status)).inc()
        if stats.cache in ("hit", "miss"):
            self.cache.labels(stats.cache).inc()

    def executor_error(self) -> None:
        """Count an unexpected exception in the batched executor."""
        self.executor_errors.inc()

    def cache_error(self, operation: str) -> None:
        """Count a failed call to the cache backend."""
        self.cache_errors.labels(operation).inc()

    def cache_state(self, up: bool) -> None:
        """Note whether the cache backend answers."""
        self.cache_up.set(1 if up else 0)

    def cache_size(self, held_bytes: int, entries: int) -> None:
        """Note what the in-process cache holds (it calls this as it changes)."""
        self.cache_bytes.set(held_bytes)
        self.cache_entries.set(entries)

    def purged_keys(self, count: int) -> None:
        """Count surrogate keys this process purged from its cache."""
        self.purged.inc(count)

    def varnish_purged(self, ok: bool) -> None:
        """Count a PURGE sent to a Varnish, and whether it succeeded."""
        self.varnish_purges.labels("ok" if ok else "failed").inc()

    def replica_state(self, usable: bool, lag: float | None) -> None:
        """Note the read replica's lag and whether public reads go to it."""
        self.replica_lag.set(-1 if lag is None else lag)
        self.replica_used.set(1 if usable else 0)

    def public_read(self, replica: bool) -> None:
        """Count a public request and where it read."""
        self.public_reads.labels("replica" if replica else "primary").inc()

    def render(self) -> bytes:
        """The exposition: this process's metrics, or with several workers the instance's."""
        if self.folder is None:
            return generate_latest(self.registry)
        forget_dead_workers(self.folder)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.folder)
        return generate_latest(registry)

    def retire(self) -> None:
        """This process stops: its gauges leave the instance's (its counters stay in the sums)."""
        if self.folder is not None:
            mark_process_dead(os.getpid(), self.folder)


_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def forget_dead_workers(folder: str) -> list[int]:
    """Remove the gauges of workers that no longer run (killed, say, so they could not say so
    themselves); the process ids whose gauges went. What ``mark_process_dead`` does, for every
    dead worker found, and without failing when another worker's scrape removes a file first."""
    dead = set()
    for path in glob.glob(os.path.join(folder, "gauge_live*_*.db")):
        found = _LIVE_GAUGE_FILE.fullmatch(os.path.basename(path))
        if found is not None and not _running(int(found[1])):
            dead.add(int(found[1]))
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    return sorted(dead)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user has the number now: not a worker of ours
        return False
    return True


def log_request(stats: RequestStats, method: str, path: str) -> None:
    """One JSON line per request."""
    if not log.isEnabledFor(logging.INFO):
        return
    line = {
        "method": method,
        "path": path,
        "operation": stats.operation,
        "kind": stats.kind,
        "status": stats.status,
        "ms": round(stats.elapsed() * 1000, 2),
        "cache": stats.cache,
        "statements": stats.statements,
        "db_ms": round(stats.db * 1000, 2),
        "viewer": stats.viewer,
        "persisted": stats.persisted,
    }
    if stats.error_code:
        line["error"] = stats.error_code
    log.info(orjson.dumps(line).decode())

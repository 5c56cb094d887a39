"""The processes' figures over time: CPU, USS/PSS, descriptors, database connections, the response cache."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
import urllib.parse
import urllib.request
from collections import Counter
from typing import Any

import asyncpg
import psutil

from bench import load, stores
from bench.run import load_average
from bench.soak.common import HOST, MIB
from bench.soak.report import _print_sample
from bench.soak.traffic import Traffic, _percentiles

# -- processes -----------------------------------------------------------------------------


def process_figures(pid: int, store_files: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    """RSS, USS, PSS (MiB), descriptors, threads and CPU seconds of one process; None when it is gone."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            full = proc.memory_full_info()
            cpu = proc.cpu_times()
            figures = {
                "pid": pid,
                "name": proc.name(),
                "rss_mib": round(full.rss / MIB, 1),
                "uss_mib": round(full.uss / MIB, 1),
                "pss_mib": round(full.pss / MIB, 1),
                "fds": proc.num_fds(),
                "threads": proc.num_threads(),
                "cpu_seconds": round(cpu.user + cpu.system, 2),
            }
            if store_files:
                figures["store_fds"] = sum(1 for f in proc.open_files() if f.path in store_files)
        return figures
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None


def server_figures(pid: int, store_files: frozenset[str]) -> dict[str, Any]:
    """The uvicorn process and its children, each and summed."""
    pids = [pid]
    with contextlib.suppress(psutil.NoSuchProcess):
        pids += [child.pid for child in psutil.Process(pid).children(recursive=True)]
    each = [f for f in (process_figures(p, store_files) for p in pids) if f is not None]
    total = {key: round(sum(f[key] for f in each), 2) for key in ("rss_mib", "uss_mib", "pss_mib", "cpu_seconds")}
    total.update({key: sum(f[key] for f in each) for key in ("fds", "threads")})
    if store_files:
        total["store_fds"] = sum(f["store_fds"] for f in each)
    return {**total, "processes": each}


def response_cache_mib(port: int) -> float | None:
    """The bodies the server's in-process response cache holds (its ``/metrics``), in MiB: the share
    of its memory that fills up to a bound during the first part of a run."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    found = re.search(r"^alphanode_response_cache_bytes ([0-9.e+]+)$", text, re.MULTILINE)
    return round(float(found.group(1)) / MIB, 1) if found else None


async def postgres_backends(database: str) -> list[tuple[int, str, str]]:
    """(pid, backend type, state) of each backend connected to the database."""
    conn = await asyncpg.connect(
        host=stores.PG_HOST, port=stores.PG_PORT, user=stores.PG_USER, database="postgres", timeout=10
    )
    try:
        rows = await conn.fetch(
            "SELECT pid, backend_type, coalesce(state, '') FROM pg_stat_activity WHERE datname = $1", database
        )
    finally:
        await conn.close()
    return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


class Sampler:
    """Every process's figures, and the interval's requests, at each tick."""

    def __init__(self, traffic: Traffic, server: load.Server, store: stores.Store, database: str | None) -> None:
        self.traffic = traffic
        self.server = server
        self.database = database
        self.store_files: frozenset[str] = frozenset()
        if store.dialect == "sqlite":
            path = os.path.realpath(store.url.removeprefix("sqlite:///"))
            self.store_files = frozenset(path + suffix for suffix in ("", "-wal", "-shm"))
        self.samples: list[dict[str, Any]] = []
        self.started = time.perf_counter()
        self.last = self.started
        self.cpu_started = time.process_time()

    async def sample(self) -> dict[str, Any]:
        now = time.perf_counter()
        window = self.traffic.take_window()
        seconds = now - self.last
        self.last = now
        figures = await asyncio.to_thread(server_figures, self.server.pid, self.store_files)
        figures["response_cache_mib"] = await asyncio.to_thread(response_cache_mib, self.server.port)
        sample: dict[str, Any] = {
            "t_s": round(now - self.started, 1),
            "interval_s": round(seconds, 1),
            "requests": len(window.reads) + len(window.writes),
            "rps": round((len(window.reads) + len(window.writes)) / seconds, 1) if seconds > 0 else 0.0,
            "errors": window.read_errors + window.write_errors + window.unanswered,
            "unanswered": window.unanswered,
            "all": _percentiles(window.reads + window.writes),
            "reads": {**_percentiles(window.reads), "errors": window.read_errors},
            "writes": {**_percentiles(window.writes), "errors": window.write_errors},
            "cache": dict(window.cache),
            "hit_ratio": _ratio(window.cache),
            "statuses": {str(k): v for k, v in sorted(window.statuses.items())},
            "operations": dict(window.operations),
            "in_flight": self.traffic.in_flight,
            "server": figures,
            "generator_cpu_seconds": round(time.process_time() - self.cpu_started, 2),
            "load_average_1m": load_average(),
        }
        if self.database is not None:
            backends = await postgres_backends(self.database)
            each = await asyncio.to_thread(
                lambda: [
                    {**f, "backend_type": kind, "state": state}
                    for pid, kind, state in backends
                    if (f := process_figures(pid)) is not None
                ]
            )
            sample["database"] = {
                "connections": sum(1 for _, kind, _ in backends if kind == "client backend"),
                "rss_mib": round(sum(b["rss_mib"] for b in each), 1),
                "uss_mib": round(sum(b["uss_mib"] for b in each), 1),
                "pss_mib": round(sum(b["pss_mib"] for b in each), 1),
                "fds": sum(b["fds"] for b in each),
                "backends": each,
            }
        else:
            sample["database"] = {"connections": figures["store_fds"]}
        sample["_latencies"] = (window.reads, window.writes)  # for the windows' p99, not written out
        self.samples.append(sample)
        return sample

    async def every(self, interval: float, until: float) -> None:
        """A sample at each ``interval`` from the start, up to ``until`` seconds (the run's end)."""
        tick = 1
        while tick * interval < until - 0.5:
            await asyncio.sleep(max(0.0, self.started + tick * interval - time.perf_counter()))
            _print_sample(await self.sample())
            tick += 1


def _ratio(cache: Counter[str] | dict[str, int]) -> float | None:
    looked = cache.get("hit", 0) + cache.get("miss", 0)
    return round(cache.get("hit", 0) / looked, 3) if looked else None

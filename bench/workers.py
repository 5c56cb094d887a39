"""One server process against two: ``python -m bench.workers [--posts N] [--duration S] [--connections C]``.

Method
------
1. **Store.** ``alphanode generate`` of ``--posts`` documents (default 20,000, seed 42,
   kept in ``var/bench/n<posts>/corpus`` as ``bench.run --count`` keeps it, and reused)
   and ``alphanode import`` of them into a new SQLite file
   (``var/bench/n<posts>/workers.db``, removed at the end), through ``bench/stores.py``.
2. **Requests.** ``--bodies`` PostPage bodies (default 1,000) with slugs drawn from the
   store with a fixed seed (``bench/workload.py``), POSTed in turn by wrk's Lua script
   (``bench/load.py``). The response cache is off (``ALPHANODE_CACHE=false``): every
   request is a post page computed from the store.
3. **Servers.** ``alphanode serve --workers N`` (``python -m server.cli serve``, the
   product's own command: with one worker uvicorn serves in that process, with more a
   supervisor starts them as processes of their own) on a free port of 127.0.0.1, no access
   log. After ``/healthz`` answers, the run waits for N workers and for the processes to
   be idle (each has loaded the fact index), sends every body once (each must answer 200
   without errors), then wrk runs ``--warmup`` seconds (default 5) and ``--duration``
   seconds measured (default 15) with ``--connections`` (default 16) on ``--threads``
   (default 1). Measured in the order 1 worker, 2 workers, 1 worker (ABA): a machine
   whose speed drifts shows as the two 1-worker runs differing.
4. **Figures per run.** wrk's requests per second, p50/p90/p99 latency and errors (socket
   errors, timeouts, and responses other than 2xx/3xx, each kind apart); the CPU seconds
   of the server's processes (the supervisor and every worker, psutil ``cpu_times``)
   during the measured run, in all and per process; the CPU seconds wrk itself used
   (``getrusage(RUSAGE_CHILDREN)`` around it: it shares the cores with the server); the
   connections each worker held a few seconds into the run (how the kernel spread
   them); RSS, USS and PSS of each process after the run (psutil ``memory_full_info``);
   the 1-minute load average before it.
5. **Headline.** 2-worker req/s / the mean of the two 1-worker runs' req/s, against the
   target of 1.4 on a 2-core machine.
6. **Output.** ``bench/results/<date>-workers-sqlite.json`` (``-2``, ``-3``… for later
   runs of the day, never over an earlier run's file) and a Markdown table printed; wrk's
   output, the Lua script and the servers' logs in ``var/bench/n<posts>/logs/workers/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import random
import resource
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench import load, stores, workload
from bench.run import _send_all, load_average, machine_info
from loaders import ReadPool

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
VAR = ROOT / "var" / "bench"
SEED = 42
MIB = 1024 * 1024
TARGET = 1.4  # 2-worker req/s over 1-worker req/s on a 2-core machine
ORDER = (1, 2, 1)


@dataclass(frozen=True, slots=True)
class Config:
    posts: int
    bodies: int
    seconds: float
    warmup: float
    connections: int
    threads: int
    seed: int
    out: Path
    work: Path
    reuse_port: bool = False

    @property
    def corpus(self) -> Path:
        return self.work / "corpus"

    @property
    def store_path(self) -> Path:
        return self.work / "workers.db"

    @property
    def logs(self) -> Path:
        return self.work / "logs" / "workers"


def _say(message: str) -> None:
    print(message, flush=True)


# -- the server ----------------------------------------------------------------------------


def _environment() -> dict[str, str]:
    """This environment without any ALPHANODE_ setting (or metrics folder) of the shell's, and the
    response cache off."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("ALPHANODE_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    return {**kept, "ALPHANODE_CACHE": "false", "ALPHANODE_LOG_LEVEL": "warning"}


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _role(proc: psutil.Process, root: int, workers: int) -> str:
    """``worker`` for a process serving requests, ``supervisor`` for uvicorn's parent of several, else ``other``."""
    if proc.pid == root:
        return "worker" if workers == 1 else "supervisor"
    with contextlib.suppress(psutil.Error):
        if "spawn_main" in " ".join(proc.cmdline()):
            return "worker"
    return "other"


def _tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of the server process and each of its children, by pid."""
    found = {}
    for proc in _tree(pid):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            found[proc.pid] = times.user + times.system
    return found


def _settle(server: load.Server, workers: int, timeout: float = 120.0) -> float:
    """Until the server has ``workers`` workers and its processes are idle (under a quarter of a core in
    all: each has loaded the fact index; an idle worker still reads the purge log ten times a second).
    Returns the seconds waited."""
    started = time.monotonic()
    while True:
        roles = [_role(p, server.pid, workers) for p in _tree(server.pid)]
        before = sum(_tree_cpu(server.pid).values())
        time.sleep(1.0)
        if roles.count("worker") == workers and sum(_tree_cpu(server.pid).values()) - before < 0.25:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"the server did not settle with {workers} worker(s) in {timeout:.0f} s")


@contextlib.contextmanager
def serve(
    url: str, workers: int, log: Path, startup_timeout: float = 120.0, settle: bool = True, reuse_port: bool = False
) -> Iterator[load.Server]:
    """``alphanode serve --workers N`` on a free port of 127.0.0.1 until the block ends: from the moment
    ``/healthz`` answers, or (``settle``) once every worker is up and the processes are idle."""
    port = load.free_port()
    command = [sys.executable, "-m", "server.cli", "serve", "--database", url]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    if reuse_port:
        command.append("--reuse-port")
    name = f"alphanode serve --workers {workers}"
    with load.run_server(name, command, port, _environment(), log, startup_timeout) as server:
        if settle:
            _settle(server, workers)
        yield server


def _connections(server: load.Server, workers: int) -> dict[int, int]:
    """Established connections on the server's port, by worker pid."""
    found = {}
    for proc in _tree(server.pid):
        if _role(proc, server.pid, workers) != "worker":
            continue
        with contextlib.suppress(psutil.Error):
            found[proc.pid] = sum(
                1
                for c in proc.net_connections(kind="tcp")
                if c.laddr and c.laddr.port == server.port and c.status == psutil.CONN_ESTABLISHED
            )
    return found


def _memory(server: load.Server, workers: int) -> list[dict[str, Any]]:
    """Each process's role, RSS, USS and PSS (MiB)."""
    found = []
    for proc in _tree(server.pid):
        with contextlib.suppress(psutil.Error):
            full = proc.memory_full_info()
            found.append(
                {
                    "pid": proc.pid,
                    "role": _role(proc, server.pid, workers),
                    "rss_mib": round(full.rss / MIB, 1),
                    "uss_mib": round(full.uss / MIB, 1),
                    "pss_mib": round(full.pss / MIB, 1),
                }
            )
    return found


# -- one run -------------------------------------------------------------------------------


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wrk_raw(log: Path) -> dict[str, Any]:
    """The figures wrk's ``done()`` printed, from its log: the errors by kind."""
    lines = [line for line in log.read_text().splitlines() if line.startswith(load.WRK_MARK)]
    return dict(orjson.loads(lines[-1][len(load.WRK_MARK) :]))


def measure(
    url: str, workers: int, position: int, script: Path, payloads: list[bytes], config: Config
) -> dict[str, Any]:
    """Start the server, check every body, warm up, then one measured wrk run and its figures."""
    label = f"{position}-workers-{workers}"
    with serve(url, workers, config.logs / f"{label}-server.log", reuse_port=config.reuse_port) as server:
        _send_all(server, "PostPage", payloads)
        if config.warmup > 0:
            load.run_wrk(server.url, script, config.warmup, config.connections, config.threads)
        average = load_average()
        wrk_log = config.logs / f"{label}-wrk.txt"
        with ThreadPoolExecutor(1) as pool:
            cpu_before, wrk_before, started = _tree_cpu(server.pid), _children_cpu(), time.perf_counter()
            running = pool.submit(
                load.run_wrk, server.url, script, config.seconds, config.connections, config.threads, wrk_log
            )
            time.sleep(min(3.0, config.seconds / 3))
            held = _connections(server, workers)
            result = running.result()
            wall = time.perf_counter() - started
            cpu_after, wrk_after = _tree_cpu(server.pid), _children_cpu()
        memory = _memory(server, workers)
        log_text = (config.logs / f"{label}-server.log").read_text(errors="replace")
    raw = _wrk_raw(wrk_log)
    per_process = {pid: round(cpu_after[pid] - cpu_before.get(pid, 0.0), 2) for pid in cpu_after}
    server_cpu = sum(per_process.values())
    wrk_cpu = wrk_after - wrk_before
    roles = {m["pid"]: m["role"] for m in memory}
    worker_memory = [m for m in memory if m["role"] == "worker"]
    run = {
        "position": position,
        "workers": workers,
        **result.as_dict(),
        "errors_by_kind": {
            k: raw[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
        },
        "wall_seconds": round(wall, 2),
        "server_cpu_seconds": round(server_cpu, 2),
        "server_cpu_cores": round(server_cpu / wall, 2),
        "server_cpu_by_process": [
            {"pid": pid, "role": roles.get(pid, "gone"), "cpu_seconds": seconds} for pid, seconds in per_process.items()
        ],
        "wrk_cpu_seconds": round(wrk_cpu, 2),
        "wrk_cpu_percent_of_one_core": round(wrk_cpu / wall * 100, 1),
        "machine_cpu_used_percent": round((server_cpu + wrk_cpu) / (wall * len(os.sched_getaffinity(0))) * 100, 1),
        "connections_by_worker": {str(pid): n for pid, n in held.items()},
        "memory_after": memory,
        "uss_per_worker_mib": [m["uss_mib"] for m in worker_memory],
        "pss_per_worker_mib": [m["pss_mib"] for m in worker_memory],
        "uss_total_mib": round(sum(m["uss_mib"] for m in memory), 1),
        "pss_total_mib": round(sum(m["pss_mib"] for m in memory), 1),
        "load_average_1m_before": average,
        "server_log_lines": len(log_text.splitlines()),
    }
    _say(
        f"  {workers} worker(s): {result.rps:,.1f} req/s  p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms  "
        f"errors {result.errors}  server CPU {server_cpu:.1f} s ({run['server_cpu_cores']:.2f} cores)  "
        f"wrk CPU {wrk_cpu:.1f} s ({run['wrk_cpu_percent_of_one_core']:.0f}% of a core)  "
        f"connections {sorted(held.values())}  USS/worker {run['uss_per_worker_mib']} MiB"
    )
    return run


# -- output --------------------------------------------------------------------------------


def result_path(folder: Path, date: str) -> Path:
    """``<date>-workers-sqlite.json``, or ``-2``, ``-3``… after it: never an earlier run's name."""
    base = f"{date}-workers-sqlite"
    stem, n = base, 1
    while (folder / f"{stem}.json").exists():
        n += 1
        stem = f"{base}-{n}"
    return folder / f"{stem}.json"


def _mib(values: list[float]) -> str:
    return " / ".join(f"{v:.0f}" for v in values)


def table(result: dict[str, Any]) -> str:
    lines = [
        "| run | workers | req/s | p50 ms | p99 ms | errors (non-2xx) | server CPU s (cores) | wrk CPU s "
        "(% of a core) | connections per worker | USS per worker MiB | PSS per worker MiB | load avg 1m |",
        "| --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['position']} | {r['workers']} | {r['rps']:,.1f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['errors']} ({r['errors_by_kind']['status_errors']}) | {r['server_cpu_seconds']:.1f} "
            f"({r['server_cpu_cores']:.2f}) | {r['wrk_cpu_seconds']:.1f} ({r['wrk_cpu_percent_of_one_core']:.0f}%) | "
            f"{' / '.join(str(n) for n in r['connections_by_worker'].values())} | {_mib(r['uss_per_worker_mib'])} | "
            f"{_mib(r['pss_per_worker_mib'])} | {r['load_average_1m_before']:.2f} |"
        )
    h = result["headline"]
    lines += [
        "",
        f"2 workers / mean of 1: **{h['ratio']:.2f}** (target {h['target']}: {'met' if h['met'] else 'not met'}); "
        f"the two 1-worker runs differ by {h['one_worker_drift_percent']:+.1f}%.",
    ]
    return "\n".join(lines) + "\n"


# -- main ----------------------------------------------------------------------------------


async def _post_pages(url: str, count: int, seed: int) -> list[bytes]:
    """PostPage bodies of ``count`` random slugs of the store, as ``workload.build`` draws them."""
    pool = await ReadPool.open(url, 2)
    run = workload.InProcess(pool)
    try:
        bodies = await workload._post_pages(run, random.Random(f"{seed}:PostPage"), count)
    finally:
        run.close()
        await pool.close()
    return [workload.encode(b) for b in bodies]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=20_000, help="synthesized posts in the store (default 20,000)")
    parser.add_argument("--bodies", type=int, default=1_000, help="distinct post pages requested (default 1,000)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measured run (default 15)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of warm-up per run (default 5)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the result file (bench/results)")
    parser.add_argument(
        "--reuse-port", action="store_true", help="serve with --reuse-port: a listening socket per worker"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = Config(
        posts=args.posts,
        bodies=args.bodies,
        seconds=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        threads=args.threads,
        seed=SEED,
        out=args.out,
        work=VAR if args.posts == 100_000 else VAR / f"n{args.posts}",  # bench.run's folders
        reuse_port=args.reuse_port,
    )
    try:
        wrk = load.wrk_version()
    except load.WrkMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    started = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    command = " ".join(["python -m bench.workers", *(sys.argv[1:] if argv is None else argv)]).strip()
    result: dict[str, Any] = {
        "kind": "workers",
        "dialect": "sqlite",
        "started": started,
        "command": command,
        "config": {
            **{k: v for k, v in asdict(config).items() if k not in ("out", "work")},
            "order": list(ORDER),
            "response_cache": False,
        },
        "machine": machine_info(wrk, None),
    }
    _say(f"store of {config.posts:,} posts (corpus in {config.corpus})")
    clock = time.perf_counter()
    if stores.ensure_corpus(config.corpus, config.posts, config.seed):
        _say(f"  generated in {time.perf_counter() - clock:.1f} s")
    stores.remove_sqlite(config.store_path)
    store = stores.sqlite_store(config.store_path)
    try:
        timing = stores.import_corpus(store, config.corpus, config.posts)
        result["import"] = timing.as_dict()
        _say(f"  imported in {timing.wall_seconds:.1f} s")
        payloads = asyncio.run(_post_pages(store.url, config.bodies, config.seed))
        script = load.write_lua(config.logs / "post-page.lua", payloads)
        result["bodies"] = len(payloads)
        _say(
            f"PostPage, {len(payloads)} slugs, response cache off: {config.warmup:g} s warm-up, "
            f"{config.seconds:g} s measured, {config.connections} connections"
        )
        runs = [
            measure(store.url, workers, position, script, payloads, config) for position, workers in enumerate(ORDER, 1)
        ]
    finally:
        stores.remove_sqlite(config.store_path)
    result["runs"] = runs
    one = [r["rps"] for r in runs if r["workers"] == 1]
    two = [r["rps"] for r in runs if r["workers"] == 2]
    baseline = sum(one) / len(one)
    ratio = sum(two) / len(two) / baseline
    result["headline"] = {
        "ratio": round(ratio, 3),
        "target": TARGET,
        "met": ratio >= TARGET,
        "one_worker_rps": one,
        "two_worker_rps": two,
        "one_worker_drift_percent": round((one[-1] / one[0] - 1) * 100, 1),
        "errors": sum(r["errors"] for r in runs),
    }
    result["load_average_at_end"] = load_average()
    config.out.mkdir(parents=True, exist_ok=True)
    path = result_path(config.out, started[:10])
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print()
    print(table(result))
    _say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

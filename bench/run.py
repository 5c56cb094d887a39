"""The benchmark suite: ``make bench`` or ``python -m bench.run [--quick] [--dialect ...] [--skip-import]``.

Method
------
1. **Corpus and import.** ``alphanode generate --count 100000 --seed 42`` into
   ``var/bench/corpus`` (kept and reused), then ``alphanode import`` of it
   into an empty SQLite file and an empty PostgreSQL database
   (``alphanode_bench`` on 127.0.0.1:5432, user postgres; created here and
   dropped at the end unless ``--keep-database``), timed from outside: the
   rate is documents per second of wall-clock time, process start-up and the
   similar-posts refresh included.
2. **Request bodies.** For each frontend operation (``server/operations``:
   PostPage, Listing, FilteredListing, Search, Facets, EntityPage,
   Vocabulary) a list of JSON bodies with varied variables drawn from the
   store with a fixed seed (see ``bench/workload.py``).
3. **In-process pass.** Every body runs once through
   ``server.graphql_http.execute`` on a read pool whose ``hooks`` record each
   statement: statements per request (``BEGIN`` and ``ROLLBACK`` included).
   PostPage and Listing bodies also run through the hand-written handlers
   (``bench/handwritten.py``); their ``data`` must equal the API's after JSON
   normalization and they must run the same statements, or the run stops.
4. **Load.** The API (``server.app:create_app``, response cache off) and
   the hand-written app are served side by side by uvicorn in subprocesses
   (one worker each, ``--no-access-log``, free ports on 127.0.0.1). Every
   body is first sent once and must answer 200 without errors (the
   hand-written server's answers must be byte for byte the API's); then, per
   operation, wrk runs a warm-up (3 s) and a measured run (10 s) with 8
   connections on one thread, POSTing the bodies in turn. PostPage and
   Listing, the headline, are measured on both servers in two rounds that
   alternate which goes first (API then hand-written, then the reverse), so
   that a machine whose speed drifts during the run moves both alike; the
   ratio is that of the rounds' mean req/s. Then the API's other operations,
   and three of them one request at a time. Reported: requests per second,
   p50 and p99 latency (wrk's histogram, read in ``done()``), the server's
   CPU use during the run, its RSS after the run and its peak RSS so far
   (``VmRSS``/``VmHWM``).
5. **Output.** A Markdown table per dialect, printed and written to
   ``bench/results/<date>-<dialect>.md`` with the same figures as JSON beside
   it (``-quick`` in the name for ``--quick`` runs; ``-2``, ``-3``… for later runs
   of the same day). The headline is the ratio
   GraphQL req/s / hand-written req/s for the post page and the listing.

Caveats
-------
- Loopback on one machine: wrk and the server share its cores (2 on the
  reference machine), and wrk's own CPU use is taken from the server. One wrk
  thread keeps that to about one core.
- One uvicorn worker: a single Python process, so figures are per core, not
  per machine. uvicorn picks uvloop and httptools when installed; without them
  (the project does not depend on them) it runs asyncio and h11, which costs
  both servers alike and lowers the GraphQL / hand-written ratio's contrast.
- Closed loop: 8 connections each wait for their answer before sending the
  next request, so latency percentiles are those of a saturated server, not
  of a given arrival rate (wrk does not correct for coordinated omission).
- The warm-up fills the page cache, SQLite's cache, prepared-statement caches
  and the API's parsed-document cache; cold-start costs are not measured.
- The corpus is synthesized: posts are alike in size and shape, so real
  content would spread latencies more.
- Memory is per server process: peak RSS accumulates over the operations run
  before it, in the order of the table.
- The hand-written endpoint does the same reads and writes the same JSON but
  does none of GraphQL's work (parsing and validating the query, coercing
  variables, resolving fields, DataLoaders); see ``bench/handwritten.py``.
- A busy machine makes every figure lower and noisier: the load average and
  the server's CPU use are recorded beside each run for that reason.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import orjson

from bench import load, stores, workload, writes
from bench.run_results import ONE_AT_A_TIME, Result, Row, markdown, write_results
from loaders import ReadPool

ROOT = Path(__file__).resolve().parents[1]
VAR = ROOT / "var" / "bench"
SEED = 42


@dataclass(frozen=True, slots=True)
class Config:
    count: int
    seed: int
    seconds: float
    warmup: float
    connections: int
    threads: int
    quick: bool
    sizes: workload.Sizes
    work: Path  # corpus, SQLite store, Lua scripts and logs

    @property
    def corpus(self) -> Path:
        return self.work / "corpus"

    @property
    def sqlite_path(self) -> Path:
        return self.work / "sqlite.db"


# -- machine -------------------------------------------------------------------------


def _proc_field(path: str, name: str) -> str:
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return "unknown"


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info(wrk: str, postgres: str | None) -> dict[str, Any]:
    mem_kib = int(_proc_field("/proc/meminfo", "MemTotal").split()[0])
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _proc_field("/proc/cpuinfo", "model name"),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres,
        "wrk": wrk,
        "packages": {
            name: _version(name)
            for name in ("uvicorn", "starlette", "strawberry-graphql", "graphql-core", "orjson", "aiosqlite", "asyncpg")
        },
        "uvicorn_loop": "uvloop" if find_spec("uvloop") else "asyncio",
        "uvicorn_http": "httptools" if find_spec("httptools") else "h11",
        "load_average_at_start": load_average(),
    }


# -- one dialect ---------------------------------------------------------------------


async def _prepare(
    url: str, config: Config
) -> tuple[workload.Workloads, dict[str, workload.Statements], dict[str, workload.Comparison]]:
    pool = await ReadPool.open(url, 2)
    try:
        bodies = await workload.build(pool, config.sizes, config.seed)
        statements, comparisons = await workload.check(pool, bodies)
    finally:
        await pool.close()
    return bodies, statements, comparisons


def _say(message: str) -> None:
    print(message, flush=True)


def _measure(
    server: load.Server,
    name: str,
    operation: str,
    payloads: list[bytes],
    statements: str,
    config: Config,
    log: Path,
    connections: int | None = None,
    round_: int = 1,
) -> Row:
    """Warm up, then one measured wrk run of the operation's bodies; the server's CPU use and memory."""
    script = load.write_lua(log.with_suffix(".lua"), payloads)
    connections = connections or config.connections
    if config.warmup > 0:
        load.run_wrk(server.url, script, config.warmup, connections, config.threads)
    average = load_average()
    cpu_before, started = server.cpu_seconds(), time.perf_counter()
    result = load.run_wrk(server.url, script, config.seconds, connections, config.threads, log)
    cpu = (server.cpu_seconds() - cpu_before) / (time.perf_counter() - started) * 100
    row = Row(operation, name, len(payloads), result, statements, round(cpu, 1), server.memory(), average, round_)
    _say(
        f"  {operation:<16} {name:<11} {round_} {result.rps:>9.1f} req/s  p50 {result.p50_ms:>7.2f} ms  "
        f"p99 {result.p99_ms:>7.2f} ms  cpu {row.cpu_percent:>5.1f}%  rss {row.memory.rss_mib:.0f} MiB"
        + (f"  {result.errors} ERRORS" if result.errors else "")
    )
    return row


def _send_all(server: load.Server, operation: str, payloads: list[bytes]) -> list[bytes]:
    """Every body once: each must answer 200 without errors. Returns the response bodies."""
    answers = []
    for payload in payloads:
        status, answer = server.post(payload)
        parsed = orjson.loads(answer)
        if status != 200 or "errors" in parsed or parsed.get("data") is None:
            raise SystemExit(f"{server.app}: {operation} answered {status}: {answer[:500]!r}\nfor {payload[:500]!r}")
        answers.append(answer)
    return answers


def bench_dialect(store: stores.Store, config: Config, result: Result) -> None:
    _say(f"[{store.dialect}] preparing request bodies and counting statements in-process")
    workloads, statements, comparisons = asyncio.run(_prepare(store.url, config))
    result.statements = {op: asdict(s) for op, s in statements.items()}
    result.failures = dict(workloads.failures)
    for operation, reason in workloads.failures.items():
        _say(f"  {operation}: NOT MEASURED, the API fails: {reason[:300]}")
    for operation, comparison in comparisons.items():
        result.checks[operation] = {
            "in_process": {k: v for k, v in asdict(comparison).items() if k != "mismatches"},
            "mismatches": comparison.mismatches,
        }
        if not comparison.ok:
            raise SystemExit(
                f"[{store.dialect}] the hand-written {operation} differs from the GraphQL API: {comparison}"
            )
        _say(
            f"  hand-written {operation}: {comparison.identical_normalized}/{comparison.compared} identical data, "
            f"{comparison.same_statements}/{comparison.compared} the same statements"
        )
    payloads = {op: [workload.encode(b) for b in bodies] for op, bodies in workloads.bodies.items()}
    logs = config.work / "logs" / store.dialect
    expected: dict[str, list[bytes]] = {}

    _say(f"[{store.dialect}] GraphQL API (response cache off) and hand-written endpoint under load")
    uncached = {"ALPHANODE_CACHE": "false"}
    with (
        load.serve(load.GRAPHQL_APP, store.url, logs / "graphql-server.log", env=uncached) as server,
        load.serve(load.HANDWRITTEN_APP, store.url, logs / "handwritten-server.log") as baseline,
    ):
        result.idle_memory["graphql"] = asdict(server.memory())
        result.idle_memory["handwritten"] = asdict(baseline.memory())
        for operation in payloads:
            expected[operation] = _send_all(server, operation, payloads[operation])
        headline = [op for op in workload.HANDWRITTEN_OPERATIONS if op in payloads]
        for operation in headline:
            answers = _send_all(baseline, operation, payloads[operation])
            same = sum(a == b for a, b in zip(answers, expected[operation], strict=True))
            result.checks[operation]["http"] = {"compared": len(answers), "identical_bytes": same}
            if same != len(answers):
                raise SystemExit(f"[{store.dialect}] hand-written {operation}: {same}/{len(answers)} identical")
            _say(f"  hand-written {operation}: {same}/{len(answers)} response bodies identical over HTTP")
        # The headline pairs side by side, in rounds that alternate which server goes first, so
        # that a machine getting faster or slower during the run moves both alike.
        for round_ in range(1, HEADLINE_ROUNDS + 1):
            for operation in headline:
                pair = [(server, "graphql"), (baseline, "handwritten")]
                for measured, name in pair if round_ % 2 else reversed(pair):
                    log = logs / f"{name}-{operation}-{round_}.txt"
                    count = str(statements[operation])
                    result.rows.append(
                        _measure(measured, name, operation, payloads[operation], count, config, log, round_=round_)
                    )
        for operation in (op for op in payloads if op not in headline):
            log = logs / f"graphql-{operation}.txt"
            count = str(statements[operation])
            result.rows.append(_measure(server, "graphql", operation, payloads[operation], count, config, log))
        # The same, one request at a time: each answer's own time, without waiting behind others.
        for operation in (op for op in LATENCY_OPERATIONS if op in payloads):
            log = logs / f"graphql-{operation}-one-at-a-time.txt"
            count = str(statements[operation])
            row = _measure(server, ONE_AT_A_TIME, operation, payloads[operation], count, config, log, connections=1)
            result.rows.append(row)

    _say(f"[{store.dialect}] GraphQL API under load, response cache on")
    with load.serve(load.GRAPHQL_APP, store.url, logs / "cached-server.log", env={"ALPHANODE_CACHE": "true"}) as server:
        for operation in (op for op in workload.HANDWRITTEN_OPERATIONS if op in payloads):
            log = logs / f"cached-{operation}.txt"
            result.rows.append(
                _measure(server, "graphql-cached", operation, payloads[operation], "0 (hits)", config, log)
            )
        if "PostPage" in payloads and "Listing" in payloads:
            result.mixed = _mixed(server, store, payloads, config, logs)

    _say(f"[{store.dialect}] what an edit costs")
    result.writes = asyncio.run(writes.measure(store.url))
    for name, figures in result.writes.items():
        _say(f"  {name}: {figures['mean_ms']} ms mean, {figures['statements_mean']} statements")


MIXED_READS, MIXED_WRITES = 95, 5
HEADLINE_ROUNDS = 2  # PostPage and Listing on both servers: G H, then H G
# Operations also measured with one connection (one request at a time): the p99 target is theirs.
LATENCY_OPERATIONS = ("FilteredListing", "Search", "Facets")


def _mixed(
    server: load.Server, store: stores.Store, payloads: dict[str, list[bytes]], config: Config, logs: Path
) -> dict[str, Any]:
    """95% reads of a popular set (20 post pages, 5 listing pages) and 5% writes (setStatus) on those posts."""
    token = stores.editor_token(store)
    popular = payloads["PostPage"][:20] + payloads["Listing"][:5]
    ids = []
    for body in payloads["PostPage"][:20]:
        slug = orjson.loads(body)["variables"]["slug"]
        _, answer = server.post(
            orjson.dumps({"query": "query($s: String!) { post(slug: $s) { id } }", "variables": {"s": slug}})
        )
        ids.append(orjson.loads(answer)["data"]["post"]["id"])
    mutation = "mutation($id: ID!, $s: String!) { setStatus(id: $id, status: $s) { __typename } }"
    bodies: list[bytes] = []
    tokens: list[str] = []
    for n in range(MIXED_READS + MIXED_WRITES):
        if n % 20 == 19:  # 5 writes in 100, spread out
            status = "published" if (n // 20) % 2 else "reviewed"
            bodies.append(orjson.dumps({"query": mutation, "variables": {"id": ids[n % len(ids)], "s": status}}))
            tokens.append(token)
        else:
            bodies.append(popular[n % len(popular)])
            tokens.append("")
    script = load.write_lua(logs / "mixed.lua", bodies, tokens)
    if config.warmup > 0:
        load.run_wrk(server.url, script, config.warmup, config.connections, config.threads)
    hits = load.metric(server, "alphanode_response_cache_total", 'result="hit"')
    misses = load.metric(server, "alphanode_response_cache_total", 'result="miss"')
    outcome = load.run_wrk(server.url, script, config.seconds, config.connections, config.threads, logs / "mixed.txt")
    hits = load.metric(server, "alphanode_response_cache_total", 'result="hit"') - hits
    misses = load.metric(server, "alphanode_response_cache_total", 'result="miss"') - misses
    ratio = round(hits / (hits + misses), 3) if hits + misses else None
    _say(f"  mixed 95/5: {outcome.rps:.1f} req/s, p99 {outcome.p99_ms:.2f} ms, cache hit ratio {ratio}")
    return {"reads_per_100": MIXED_READS, "writes_per_100": MIXED_WRITES, "hit_ratio": ratio, **outcome.as_dict()}


# -- main ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 5,000 posts, 1 s warm-up, 3 s runs")
    parser.add_argument(
        "--dialect", choices=("sqlite", "postgresql", "both"), default="both", help="stores to measure (default both)"
    )
    parser.add_argument(
        "--skip-import", action="store_true", help="reuse the stores of an earlier run (import when there is none)"
    )
    parser.add_argument(
        "--keep-database", action="store_true", help="keep the PostgreSQL database for a later --skip-import"
    )
    parser.add_argument("--count", type=int, help="posts to synthesize (default 100,000; 5,000 with --quick)")
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 10; 3 with --quick)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per run (default 3; 1 with --quick)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    return parser.parse_args(argv)


def _config(args: argparse.Namespace) -> Config:
    quick = bool(args.quick)
    count = args.count or (5_000 if quick else 100_000)
    # The full corpus is the product's: var/bench/corpus. Other sizes keep their own folder.
    work = VAR if count == 100_000 else VAR / f"n{count}"
    return Config(
        count=count,
        seed=SEED,
        seconds=args.duration or (3.0 if quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (1.0 if quick else 3.0),
        connections=args.connections,
        threads=args.threads,
        quick=quick,
        sizes=workload.Sizes.quick() if quick else workload.Sizes(),
        work=work,
    )


def _store(dialect: str, config: Config, skip_import: bool) -> tuple[stores.Store, dict[str, Any] | None]:
    """The dialect's store, imported now (timed) unless it is to be reused."""
    if dialect == "sqlite":
        store = stores.sqlite_store(config.sqlite_path)
        if skip_import and config.sqlite_path.exists():
            return store, None
        stores.remove_sqlite(config.sqlite_path)
    else:
        store = stores.postgres_store()
        if skip_import and stores.postgres_database_exists():
            return store, None
        stores.create_postgres_database()
    _say(f"[{dialect}] importing {config.count:,} documents")
    timing = stores.import_corpus(store, config.corpus, config.count)
    _say(f"  {timing.docs_per_second:,.0f} docs/s ({timing.wall_seconds:.1f} s wall-clock)")
    if dialect == "postgresql":
        _say(f"  VACUUM (ANALYZE) in {stores.settle_postgres():.1f} s, before measuring")
    return store, timing.as_dict()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = _config(args)
    try:
        wrk = load.wrk_version()
    except load.WrkMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    dialects = ["sqlite", "postgresql"] if args.dialect == "both" else [args.dialect]
    postgres = None
    if "postgresql" in dialects:
        try:
            postgres = stores.postgres_version()
        except Exception as exc:
            print(
                f"PostgreSQL does not answer at {stores.PG_HOST}:{stores.PG_PORT} as {stores.PG_USER} ({exc}); "
                "start it or run with --dialect sqlite",
                file=sys.stderr,
            )
            return 2
    command = " ".join(["python -m bench.run", *(sys.argv[1:] if argv is None else argv)]).strip()
    _say(f"corpus: {config.count:,} posts, seed {config.seed}, in {config.corpus}")
    started = time.perf_counter()
    if stores.ensure_corpus(config.corpus, config.count, config.seed):
        _say(f"  generated in {time.perf_counter() - started:.1f} s")
    else:
        _say("  reused")
    machine = machine_info(wrk, postgres)
    written = []
    for dialect in dialects:
        result = Result(
            dialect=dialect,
            started=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            command=command,
            config={**{k: v for k, v in asdict(config).items() if k not in ("sizes", "work")}, "dialect": dialect},
            machine={**machine, "load_average_at_start": load_average()},
            import_timing=None,
        )
        try:
            store, result.import_timing = _store(dialect, config, args.skip_import)
            bench_dialect(store, config, result)
        finally:
            if dialect == "postgresql" and not args.keep_database:
                stores.drop_postgres_database()
        path = write_results(result, config.quick)
        written.append(path)
        print()
        print(markdown(result))
    for path in written:
        _say(f"wrote {path.relative_to(ROOT)} and {path.with_suffix('.json').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Beside PostGraphile: ``python -m bench.peers [--quick] [--count N] ...`` (``make bench-peers``).

This API, the hand-written endpoint (``bench/handwritten.py``) and PostGraphile v4
(``bench/peer.py``, ``bench/peer_content.py``) on the same PostgreSQL store, measured side by side on the post
page and the listing, with and without ``totalCount``.

Method
------
1. **Store.** ``alphanode generate --count N --seed 42`` (default 20,000 posts; the
   corpus is kept in ``var/bench/n<N>/corpus``), imported with ``alphanode import``
   into a new PostgreSQL database ``alphanode_peers`` on 127.0.0.1:5432 (user
   postgres), then ``VACUUM (ANALYZE)``. The database is dropped at the end unless
   ``--keep-database``; ``--skip-import`` reuses one left by an earlier run.
2. **PostGraphile.** ``npm ci`` into ``bench/postgraphile`` unless the locked
   version is already installed there.
3. **Request bodies.** Post pages of random slugs (fixed seed) and the first pages
   of the listing, 20 cards each, each after the previous page's end cursor (each
   system's own cursors: PostGraphile's bodies are made by walking its pages). The
   listing without ``totalCount`` uses the same pages. Each system gets its own query
   text (``bench/peer_content.py``); this API's are ``server/operations``' and, without the
   total, the same listing minus that field.
4. **Statements per request.** This API's and the hand-written endpoint's in process,
   on a read pool whose hooks record each statement (``BEGIN`` and ``ROLLBACK``
   included); the hand-written answers must equal the API's and run the same
   statements, or the run stops. PostGraphile's from its own log of every statement
   it sends (``DEBUG=postgraphile:postgres``, on a server started for that pass only),
   and checked against the transactions PostgreSQL counted for the database
   (``pg_stat_database``, ``xact_commit`` + ``xact_rollback``) over the same requests.
5. **Content check.** The three servers are started (one process each: uvicorn with
   one worker and no access log for this API, response cache off, and for the
   hand-written endpoint; Node.js for PostGraphile), every body is sent once to each
   and must answer 200 without errors; the hand-written answers must be byte for byte
   the API's, and each PostGraphile answer, normalised, must equal the API's
   (``bench.peer_content.compare``). A difference stops the run before anything is timed.
6. **Load.** Per round (default 3), per operation, each server in turn: wrk warm-up
   (3 s) then a measured run (10 s), 8 connections on one thread, POSTing the bodies in
   turn; the order of the servers is reversed every other round. Reported per run:
   requests per second, p50/p99 latency, the server's CPU use and memory.
7. **Output.** A Markdown table and the ratios, printed and written with every figure
   as JSON to ``bench/results/<date>-peers.md`` and ``.json`` (``-quick`` for smoke runs,
   ``-2``, ``-3``… for later runs of the day; ``--out`` for another folder). The
   headline is **this API's req/s ÷ PostGraphile's**, per operation, the ratio of the
   rounds' mean req/s, each round's own ratio beside it.

The caveats of ``bench/run.py`` hold here too (loopback, wrk on the same cores, closed
loop, warm caches, synthesized posts).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from bench import load, peer, peer_content, stores, workload
from bench.peers_results import OPERATIONS, SERVERS, Result, Run, markdown, write_results
from bench.run import ROOT, SEED, _send_all, load_average, machine_info
from loaders import ReadPool

RESULTS = ROOT / "bench" / "results"
VAR = ROOT / "var" / "bench"
DATABASE = "alphanode_peers"
FLUSH_WAIT = 11.0  # PostgreSQL 15 flushes an idle backend's statistics within 10 s


@dataclass(frozen=True, slots=True)
class Config:
    count: int
    seconds: float
    warmup: float
    connections: int
    threads: int
    rounds: int
    post_pages: int
    listing_pages: int
    quick: bool

    @property
    def work(self) -> Path:
        return VAR / f"n{self.count}"


def _say(message: str) -> None:
    print(message, flush=True)


# -- bodies and statements -----------------------------------------------------------


def _api_body(operation: str, variables: dict[str, Any]) -> dict[str, Any]:
    if operation == "ListingWithoutTotal":
        return {"query": peer_content.API_LISTING_WITHOUT_TOTAL, "variables": variables, "operationName": operation}
    return workload.body(operation, variables)


async def _api_bodies(
    url: str, config: Config
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, workload.Statements], dict[str, workload.Comparison]]:
    """This API's bodies, its statements per request, and the hand-written endpoint checked against it."""
    pool = await ReadPool.open(url, 2)
    run = workload.InProcess(pool)
    try:
        pages = await workload._post_pages(run, random.Random(f"{SEED}:PostPage"), config.post_pages)
        listing = await workload._listing(run, config.listing_pages)
        bodies = {
            "PostPage": pages,
            "Listing": listing,
            "ListingWithoutTotal": [_api_body("ListingWithoutTotal", b["variables"]) for b in listing],
        }
        statements, comparisons = {}, {}
        for operation, requests in bodies.items():
            comparisons[operation] = workload.Comparison()
            statements[operation] = await workload._check_operation(run, operation, requests, comparisons[operation])
    finally:
        run.close()
        await pool.close()
    return bodies, statements, comparisons


def _postgraphile_bodies(server: load.Server, api: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The same post pages, and the same listing pages walked with PostGraphile's own cursors."""
    bodies = {"PostPage": [peer_content.body("PostPage", {"slug": b["variables"]["slug"]}) for b in api["PostPage"]]}
    listing: list[dict[str, Any]] = []
    after: str | None = None
    for _ in api["Listing"]:
        request = peer_content.body("Listing", {"first": workload.LISTING_PAGE, "after": after})
        listing.append(request)
        status, answer = server.post(orjson.dumps(request))
        connection = peer_content.data_of(answer, "PostGraphile")["allPosts"]
        if status != 200 or not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    bodies["Listing"] = listing
    bodies["ListingWithoutTotal"] = [peer_content.body("ListingWithoutTotal", b["variables"]) for b in listing]
    return bodies


async def _transactions(database: str) -> int:
    """Transactions PostgreSQL has counted for the database (committed and rolled back)."""
    conn = await asyncpg.connect(
        host=stores.PG_HOST, port=stores.PG_PORT, user=stores.PG_USER, database="postgres", timeout=10
    )
    try:
        value = await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", database
        )
    finally:
        await conn.close()
    return int(value)


def _postgraphile_statements(
    url: str, database: str, api: dict[str, list[dict[str, Any]]], logs: Path
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, workload.Statements], dict[str, Any]]:
    """PostGraphile's bodies and statements per request, from its statement log; and the
    transactions PostgreSQL counted over the same requests."""
    log = logs / "postgraphile-statements.log"
    with peer.serve(url, log, debug_sql=True) as server:
        bodies = _postgraphile_bodies(server, api)
        time.sleep(FLUSH_WAIT)
        before = asyncio.run(_transactions(database))
        counts = {
            op: peer.count_statements(server, log, [orjson.dumps(b) for b in requests])
            for op, requests in bodies.items()
        }
        time.sleep(FLUSH_WAIT)
        after = asyncio.run(_transactions(database))
    requests = sum(len(c) for c in counts.values())
    transactions = {"requests": requests, "transactions": after - before}
    return bodies, {op: workload.Statements.of(c) for op, c in counts.items()}, transactions


# -- load ----------------------------------------------------------------------------


def _measure(
    server: load.Server, name: str, operation: str, payloads: list[bytes], config: Config, log: Path, round_: int
) -> Run:
    script = load.write_lua(log.with_suffix(".lua"), payloads)
    if config.warmup > 0:
        load.run_wrk(server.url, script, config.warmup, config.connections, config.threads)
    average = load_average()
    cpu_before, started = server.cpu_seconds(), time.perf_counter()
    result = load.run_wrk(server.url, script, config.seconds, config.connections, config.threads, log)
    cpu = (server.cpu_seconds() - cpu_before) / (time.perf_counter() - started) * 100
    run = Run(operation, name, round_, len(payloads), result, round(cpu, 1), server.memory(), average)
    _say(
        f"  {operation:<20} {name:<12} {round_} {result.rps:>9.1f} req/s  p50 {result.p50_ms:>7.2f} ms  "
        f"p99 {result.p99_ms:>7.2f} ms  cpu {run.cpu_percent:>5.1f}%  rss {run.memory.rss_mib:.0f} MiB"
        + (f"  {result.errors} ERRORS" if result.errors else "")
    )
    return run


def _content_check(
    servers: dict[str, load.Server], api: dict[str, list[bytes]], theirs: dict[str, list[bytes]], result: Result
) -> None:
    """Every body once to each server: the hand-written bytes must be the API's, PostGraphile's content the same."""
    for operation in OPERATIONS:
        expected = _send_all(servers["graphql"], operation, api[operation])
        hand = _send_all(servers["handwritten"], operation, api[operation])
        same = sum(a == b for a, b in zip(hand, expected, strict=True))
        if same != len(expected):
            raise SystemExit(f"hand-written {operation}: {same}/{len(expected)} answers identical to the API's")
        answers = _send_all(servers["postgraphile"], operation, theirs[operation])
        if len(answers) != len(expected):
            raise SystemExit(
                f"{operation}: the API has {len(expected)} pages, PostGraphile {len(answers)}: not the same listing"
            )
        for request, ours, other in zip(api[operation], expected, answers, strict=True):
            try:
                peer_content.compare(
                    operation,
                    peer_content.data_of(ours, "the API"),
                    peer_content.data_of(other, "PostGraphile"),
                    repr(orjson.loads(request)["variables"]),
                )
            except peer.ContentMismatch as exc:
                raise SystemExit(f"content check failed, nothing measured:\n{exc}") from None
        result.checks[operation] = {
            "compared": len(expected),
            "handwritten_identical_bytes": same,
            "same_content": True,
        }
        _say(
            f"  {operation}: {len(expected)}/{len(expected)} PostGraphile answers with the API's content, "
            f"{same}/{len(expected)} hand-written answers byte for byte the API's"
        )


def bench(store: stores.Store, database: str, config: Config, result: Result) -> None:
    logs = config.work / "logs" / "peers"
    _say("[peers] request bodies; this API's and the hand-written endpoint's statements, in process")
    api_bodies, api_statements, comparisons = asyncio.run(_api_bodies(store.url, config))
    for operation, comparison in comparisons.items():
        if not comparison.ok:
            raise SystemExit(f"the hand-written {operation} differs from the API: {comparison}")
    _say("[peers] PostGraphile's statements, from its own log, and PostgreSQL's transaction count")
    pg_bodies, pg_statements, transactions = _postgraphile_statements(store.url, database, api_bodies, logs)
    for operation in OPERATIONS:
        result.statements[operation] = {
            "graphql": str(api_statements[operation]),
            "handwritten": str(api_statements[operation]),  # checked equal above
            "postgraphile": str(pg_statements[operation]),
        }
        _say(f"  {operation}: this API {api_statements[operation]}, PostGraphile {pg_statements[operation]}")
    result.checks["postgraphile_transactions"] = transactions
    _say(
        f"  PostgreSQL counted {transactions['transactions']} transactions for {transactions['requests']} "
        "PostGraphile requests"
    )
    api = {op: [workload.encode(b) for b in bodies] for op, bodies in api_bodies.items()}
    theirs = {op: [orjson.dumps(b) for b in bodies] for op, bodies in pg_bodies.items()}

    _say("[peers] content check, then load: this API (response cache off), hand-written, PostGraphile")
    with (
        load.serve(
            load.GRAPHQL_APP, store.url, logs / "graphql-server.log", env={"ALPHANODE_CACHE": "false"}
        ) as api_server,
        load.serve(load.HANDWRITTEN_APP, store.url, logs / "handwritten-server.log") as hand_server,
        peer.serve(store.url, logs / "postgraphile-server.log") as pg_server,
    ):
        servers = {"graphql": api_server, "handwritten": hand_server, "postgraphile": pg_server}
        result.machine["idle_rss_mib"] = {name: s.memory().rss_mib for name, s in servers.items()}
        _content_check(servers, api, theirs, result)
        for round_ in range(1, config.rounds + 1):
            order = SERVERS if round_ % 2 else tuple(reversed(SERVERS))
            for operation in OPERATIONS:
                for name in order:
                    payloads = theirs[operation] if name == "postgraphile" else api[operation]
                    log = logs / f"{name}-{operation}-{round_}.txt"
                    result.runs.append(_measure(servers[name], name, operation, payloads, config, log, round_))


# -- main ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 posts, 1 s warm-up, 3 s runs")
    parser.add_argument("--count", type=int, help="posts in the store (default 20,000; 2,000 with --quick)")
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 10; 3 with --quick)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per run (default 3; 1 with --quick)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating the servers' order (default 3)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--post-pages", type=int, help="post-page bodies (default 200; 50 with --quick)")
    parser.add_argument("--listing-pages", type=int, help="listing pages (default 20; 10 with --quick)")
    parser.add_argument("--skip-import", action="store_true", help=f"reuse the database {DATABASE} if it exists")
    parser.add_argument("--keep-database", action="store_true", help=f"keep the database {DATABASE} at the end")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results (default bench/results)")
    return parser.parse_args(argv)


def _config(args: argparse.Namespace) -> Config:
    quick = bool(args.quick)
    return Config(
        count=args.count or (2_000 if quick else 20_000),
        seconds=args.duration or (3.0 if quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (1.0 if quick else 3.0),
        connections=args.connections,
        threads=args.threads,
        rounds=args.rounds,
        post_pages=args.post_pages or (50 if quick else 200),
        listing_pages=args.listing_pages or (10 if quick else 20),
        quick=quick,
    )


def _node_version() -> str:
    done = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip().lstrip("v") or "unknown"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = _config(args)
    try:
        wrk = load.wrk_version()
        postgres = stores.postgres_version()
        version = peer.ensure_installed()
    except (load.WrkMissing, peer.PeerUnavailable) as exc:
        print(exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"PostgreSQL does not answer at {stores.PG_HOST}:{stores.PG_PORT} ({exc})", file=sys.stderr)
        return 2
    command = " ".join(["python -m bench.peers", *(sys.argv[1:] if argv is None else argv)]).strip()
    corpus = config.work / "corpus"
    _say(f"corpus: {config.count:,} posts, seed {SEED}, in {corpus}; PostGraphile {version}")
    if stores.ensure_corpus(corpus, config.count, SEED):
        _say("  generated")
    store = stores.postgres_store(DATABASE)
    result = Result(
        started=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        command=command,
        config={**asdict(config), "database": DATABASE},
        machine=machine_info(wrk, postgres),
        postgraphile={"version": version, "node": _node_version(), "options": list(peer.OPTIONS)},
    )
    try:
        if not (args.skip_import and stores.postgres_database_exists(DATABASE)):
            stores.create_postgres_database(DATABASE)
            _say(f"[peers] importing {config.count:,} documents")
            timing = stores.import_corpus(store, corpus, config.count)
            _say(
                f"  {timing.docs_per_second:,.0f} docs/s; VACUUM (ANALYZE) in {stores.settle_postgres(DATABASE):.1f} s"
            )
        bench(store, DATABASE, config, result)
    finally:
        if not args.keep_database:
            stores.drop_postgres_database(DATABASE)
    path = write_results(result, args.out)
    print()
    print(markdown(result))
    _say(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

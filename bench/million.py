"""One million posts, beside 100,000: ``python -m bench.million [--sizes N ...] [--dialect ...] [--keep]``.

Method
------
1. **Corpus.** ``alphanode generate --seed 42`` in parts of ``--part`` documents (default
   100,000; two parts at a time, one a core) into ``var/million/corpus/part-NN``, each part
   numbered on from the last (``--start``): document ``i`` depends only on the seed and ``i``,
   so the first part is the 100,000-post corpus and the ten parts the 1,000,000-post one. A
   part is reused while its marker file (``.complete``) says it is whole.
2. **Import.** For each size and store, ``alphanode import`` of the size's parts into an
   empty store, timed from outside (``bench/stores.py``'s command line; the rate is
   documents per second of wall-clock time, the similar-posts refresh and ANALYZE
   included): a SQLite file ``var/million/n<size>/sqlite.db`` and a PostgreSQL database
   ``alphanode_million_<size>`` on 127.0.0.1:5432 (then ``VACUUM (ANALYZE)``, timed
   apart). The store's size after it: the SQLite file and its log, ``pg_database_size``.
   An import that has not finished after ``--import-timeout`` seconds is stopped and
   recorded as partial: the posts it wrote and their rate. A store whose import record
   (``<dialect>-import.json`` beside it) is there is reused (``--reimport``: import again).
3. **Start-up and memory.** ``alphanode serve --workers 1`` (``bench/workers.py``: the
   response cache off), timed from the command to the first answered GraphQL request (a
   post page, sent as soon as ``/healthz`` answers); then one of each of the frontend's
   reads (``bench/memory.py``) and the worker's USS and PSS (psutil ``memory_full_info``).
4. **Latency.** Request bodies drawn from the store (``bench/workload.py``: many post
   pages, listing pages, filters, searches, facets), each sent once (each must answer 200
   without errors), then per operation wrk (``bench/load.py``) runs a warm-up of
   ``--warmup`` seconds and two measured runs of ``--duration`` seconds: one connection
   (one request at a time: each answer's own time) and ``--connections`` (default 8,
   closed loop: latencies include queueing).
5. **Output.** ``bench/results/<date>-million.json`` (``-2``, ``-3``… for later runs of the
   day) and a Markdown table printed, each figure at every size and its growth factor
   (the largest size's over the smallest's). The PostgreSQL databases are dropped at the
   end unless ``--keep``; ``--clean`` also deletes the corpus and the SQLite stores.

All stores are imported before any is measured, so that the sizes' measurements run side
by side, minutes apart, on a machine whose speed drifts.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from bench import load, memory, stores, workers, workload
from bench.run import _send_all, load_average, machine_info
from loaders import ReadPool

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
VAR = ROOT / "var" / "million"
SEED = 42
PART = 100_000
SIZES = (100_000, 1_000_000)
DATABASE = "alphanode_million"
# The frontend's reads measured here, in this order.
OPERATIONS = ("PostPage", "Listing", "FilteredListing", "Search", "Facets")
STARTUP_TARGET_S = 10.0
MIB = 1024 * 1024


def _say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


# -- corpus --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Part:
    folder: Path
    start: int
    count: int

    @property
    def marker(self) -> str:
        return f"count={self.count} seed={SEED} start={self.start}\n"


def parts(corpus: Path, size: int, part: int = PART) -> list[Part]:
    """The parts that make the first ``size`` documents: ``part-01`` from 1, ``part-02`` after it, …"""
    if size <= 0 or part <= 0 or size % part:
        raise ValueError(f"a size is a positive multiple of the part ({part:,}), not {size:,}")
    width = max(2, len(str(size // part)))
    return [Part(corpus / f"part-{n + 1:0{width}d}", n * part + 1, part) for n in range(size // part)]


def _generate(one: Part) -> subprocess.Popen[str]:
    args = ["generate", "--count", str(one.count), "--seed", str(SEED), "--start", str(one.start)]
    command = [sys.executable, "-m", "server.cli", *args, "--out", str(one.folder), "--quiet"]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def ensure_parts(wanted: Sequence[Part], parallel: int = 2) -> int:
    """Generate the parts whose marker is missing, ``parallel`` at a time; how many were generated."""
    missing = [p for p in wanted if not _whole(p)]
    running: list[tuple[Part, subprocess.Popen[str]]] = []

    def finish(one: Part, process: subprocess.Popen[str]) -> None:
        output, _ = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"alphanode generate of {one.folder} failed:\n{output}")
        (one.folder / ".complete").write_text(one.marker)

    for one in missing:
        one.folder.mkdir(parents=True, exist_ok=True)
        running.append((one, _generate(one)))
        if len(running) >= parallel:
            finish(*running.pop(0))
    for pair in running:
        finish(*pair)
    return len(missing)


def _whole(one: Part) -> bool:
    marker = one.folder / ".complete"
    return marker.exists() and marker.read_text() == one.marker


# -- stores and import ---------------------------------------------------------------------


def database_name(size: int) -> str:
    return f"{DATABASE}_{size}"


def store_for(dialect: str, size: int, work: Path = VAR) -> stores.Store:
    if dialect == "sqlite":
        return stores.sqlite_store(work / f"n{size}" / "sqlite.db")
    return stores.postgres_store(database_name(size))


def sqlite_path(store: stores.Store) -> Path:
    return Path(store.url.removeprefix("sqlite:///"))


def store_bytes(store: stores.Store) -> int:
    """The store's size on disk: the SQLite file and its log, or the PostgreSQL database."""
    if store.dialect == "sqlite":
        path = sqlite_path(store)
        return sum(
            Path(f"{path}{suffix}").stat().st_size for suffix in ("", "-wal") if Path(f"{path}{suffix}").exists()
        )
    return int(asyncio.run(stores._admin(f"SELECT pg_database_size('{store.url.rsplit('/', 1)[1]}')")))


async def _posts(url: str) -> int:
    if url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(f"file:{url.removeprefix('sqlite:///')}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT count(*) FROM post").fetchone()[0])
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM post"))
    finally:
        await conn.close()


def import_parts(
    store: stores.Store, folders: Sequence[Path], expected: int, timeout: float, log: Path
) -> dict[str, Any]:
    """``alphanode -v import`` of the folders into the (empty) store, timed from outside; stopped after
    ``timeout`` seconds, and then the posts it wrote by then. Its log (where the time went) in ``log``."""
    command = [sys.executable, "-m", "server.cli", "-v", "import", "--quiet", "--json", "--database", store.url]
    command += [str(f) for f in folders]
    started = time.perf_counter()
    with log.open("w") as errors:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, text=True, start_new_session=True
        )
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the import and its parsing processes
            process.communicate()
            out = None
    wall = time.perf_counter() - started
    phases = [line.split(" ", 2)[2] for line in log.read_text().splitlines() if " alphanode." in line]
    if out is None:
        written = asyncio.run(_posts(store.url))
        return {
            "documents": expected,
            "finished": False,
            "stopped_after_s": round(wall, 1),
            "posts_written": written,
            "posts_per_second": round(written / wall, 1),
            "log": phases,
        }
    if process.returncode != 0:
        raise RuntimeError(f"alphanode import into {store.url} failed:\n{out[-2000:]}; see {log}")
    receipt = orjson.loads(out)
    timing = stores.ImportTiming(
        expected, int(receipt["created"]), len(receipt["rejected"]), round(wall, 3), float(receipt["seconds"])
    )
    if timing.created != expected or timing.rejected:
        raise RuntimeError(f"import into {store.url}: expected {expected} created, got {receipt}")
    return {**timing.as_dict(), "finished": True, "log": phases}


def record_path(store: stores.Store, size: int, work: Path) -> Path:
    return work / f"n{size}" / f"{store.dialect}-import.json"


def prepare(dialect: str, size: int, work: Path, part: int, timeout: float, reimport: bool) -> dict[str, Any]:
    """The store of ``size`` posts, imported now (or reused with its record); the import's figures."""
    store = store_for(dialect, size, work)
    record = record_path(store, size, work)
    corpus = work / "corpus"
    present = (
        sqlite_path(store).exists() if dialect == "sqlite" else stores.postgres_database_exists(database_name(size))
    )
    if record.exists() and present and not reimport:
        _say(f"[{dialect} {size:,}] reusing the store imported earlier")
        return {**orjson.loads(record.read_bytes()), "reused": True}
    record.unlink(missing_ok=True)
    record.parent.mkdir(parents=True, exist_ok=True)
    if dialect == "sqlite":
        stores.remove_sqlite(sqlite_path(store))
    else:
        stores.create_postgres_database(database_name(size))
    _say(f"[{dialect} {size:,}] importing")
    folders = [p.folder for p in parts(corpus, size, part)]
    figures = import_parts(store, folders, size, timeout, record.with_suffix(".log"))
    if figures["finished"]:
        _say(f"  {figures['wall_seconds']:.1f} s, {figures['docs_per_second']:,.0f} docs/s")
        if dialect == "postgresql":
            figures["vacuum_analyze_seconds"] = round(stores.settle_postgres(database_name(size)), 1)
            _say(f"  VACUUM (ANALYZE) in {figures['vacuum_analyze_seconds']} s")
    else:
        _say(f"  STOPPED after {figures['stopped_after_s']} s: {figures['posts_written']:,} posts written")
    figures["store_bytes"] = store_bytes(store)
    record.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    return {**figures, "reused": False}


# -- serving -------------------------------------------------------------------------------


@contextmanager
def started_server(store: stores.Store, log: Path, first: bytes) -> Iterator[tuple[load.Server, float]]:
    """``alphanode serve --workers 1``, and the seconds from the command to the first answer to ``first``."""
    began = time.monotonic()
    with workers.serve(store.url, 1, log, startup_timeout=900.0, settle=False) as server:
        status, answer = server.post(first)
        ready = time.monotonic() - began
        if status != 200 or b'"errors"' in answer:
            raise RuntimeError(f"the first request answered {status}: {answer[:300]!r}")
        yield server, ready


def _bodies(url: str) -> dict[str, list[bytes]]:
    async def build() -> workload.Workloads:
        pool = await ReadPool.open(url, 2)
        try:
            return await workload.build(pool, workload.Sizes(), SEED)
        finally:
            await pool.close()

    built = asyncio.run(build())
    missing = [op for op in OPERATIONS if op not in built.bodies]
    if missing:
        raise RuntimeError(f"no request bodies for {missing}: {built.failures}")
    return {op: [workload.encode(b) for b in built.bodies[op]] for op in OPERATIONS}


def measure(dialect: str, size: int, work: Path, seconds: float, warmup: float, connections: int) -> dict[str, Any]:
    """Start-up, memory and each operation's latency, alone and under load, on the store of ``size`` posts."""
    store = store_for(dialect, size, work)
    logs = work / f"n{size}" / "logs" / dialect
    _say(f"[{dialect} {size:,}] drawing request bodies from the store")
    began = time.monotonic()
    payloads = _bodies(store.url)
    drawn = time.monotonic() - began
    logs.mkdir(parents=True, exist_ok=True)
    with started_server(store, logs / "server.log", payloads["PostPage"][0]) as (server, ready):
        _say(f"  first request answered {ready:.2f} s after the command")
        statuses = memory.one_of_each(f"http://127.0.0.1:{server.port}")
        worker = next(p for p in workers._memory(server, 1) if p["role"] == "worker")
        _say(f"  after one of each read: USS {worker['uss_mib']} MiB, PSS {worker['pss_mib']} MiB")
        for operation in OPERATIONS:
            _send_all(server, operation, payloads[operation])
        runs: dict[str, dict[str, Any]] = {}
        for operation in OPERATIONS:
            script = load.write_lua(logs / f"{operation}.lua", payloads[operation])
            if warmup > 0:
                load.run_wrk(server.url, script, warmup, connections, 1)
            figures: dict[str, Any] = {"bodies": len(payloads[operation])}
            for label, conns in (("alone", 1), ("under_load", connections)):
                average = load_average()
                result = load.run_wrk(server.url, script, seconds, conns, 1, logs / f"{operation}-{label}.txt")
                figures[label] = {**result.as_dict(), "connections": conns, "load_average_1m_before": average}
                _say(
                    f"  {operation:<16} {label:<10} {result.rps:>8.1f} req/s  p50 {result.p50_ms:>8.2f} ms  "
                    f"p99 {result.p99_ms:>8.2f} ms" + (f"  {result.errors} ERRORS" if result.errors else "")
                )
            runs[operation] = figures
        after = next(p for p in workers._memory(server, 1) if p["role"] == "worker")
    return {
        "bodies_drawn_s": round(drawn, 1),
        "first_request_s": round(ready, 2),
        "first_request_target_s": STARTUP_TARGET_S,
        "reads_statuses": statuses,
        "worker_after_one_of_each": worker,
        "worker_after_the_runs": after,
        "operations": runs,
    }


# -- summary -------------------------------------------------------------------------------


def growth(small: float | None, large: float | None) -> float | None:
    """``large / small``, or None when either is missing or the small one is 0."""
    if small is None or large is None or not small:
        return None
    return round(large / small, 2)


def figures_of(store: dict[str, Any]) -> dict[str, float | None]:
    """The flat figures of one store of one size, for the table: name -> value."""
    imported = store.get("import", {})
    served = store.get("serve") or {}
    found: dict[str, float | None] = {
        "import wall-clock (s)": imported.get("wall_seconds") if imported.get("finished") else None,
        "import rate (docs/s)": (
            imported.get("docs_per_second") if imported.get("finished") else imported.get("posts_per_second")
        ),
        "store size (GiB)": round(imported["store_bytes"] / 1024**3, 2) if "store_bytes" in imported else None,
        "start-up to first request (s)": served.get("first_request_s"),
        "worker USS (MiB)": (served.get("worker_after_one_of_each") or {}).get("uss_mib"),
        "worker PSS (MiB)": (served.get("worker_after_one_of_each") or {}).get("pss_mib"),
    }
    for operation, runs in (served.get("operations") or {}).items():
        for label in ("alone", "under_load"):
            for quantile in ("p50_ms", "p99_ms"):
                found[f"{operation} {label.replace('_', ' ')} {quantile[:3]} (ms)"] = runs[label][quantile]
    return found


def table(result: dict[str, Any]) -> str:
    """A Markdown table per store: each figure at every size, and the growth from the smallest to the largest."""
    lines: list[str] = []
    for dialect, by_size in result["stores"].items():
        sizes = sorted(by_size, key=int)
        columns = [figures_of(by_size[s]) for s in sizes]
        names = list(dict.fromkeys(name for c in columns for name in c))
        lines.append(f"### {stores_name(dialect)}\n")
        lines.append("| figure | " + " | ".join(f"{int(s):,} posts" for s in sizes) + " | growth |")
        lines.append("| --- | " + " | ".join("--:" for _ in sizes) + " | --: |")
        for name in names:
            values = [c.get(name) for c in columns]
            factor = growth(values[0], values[-1]) if len(values) > 1 else None
            cells = " | ".join("—" if v is None else f"{v:,}" for v in values)
            lines.append(f"| {name} | {cells} | {'—' if factor is None else f'{factor}×'} |")
        lines.append("")
    return "\n".join(lines)


def stores_name(dialect: str) -> str:
    return {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(dialect, dialect)


def merged(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """One result of two runs: the earlier's stores and the later's (the later's where both have one),
    each run's command, start, configuration and machine kept."""
    runs = earlier.get("runs") or [{k: earlier[k] for k in ("started", "command", "config", "machine") if k in earlier}]
    runs = [*runs, {k: later[k] for k in ("started", "command", "config", "machine")}]
    stores_ = {d: dict(by_size) for d, by_size in earlier["stores"].items()}
    for dialect, by_size in later["stores"].items():
        stores_.setdefault(dialect, {}).update(by_size)
    return {**later, "runs": runs, "stores": stores_}


def result_path(folder: Path, date: str) -> Path:
    """``<date>-million.json``, or ``-2``, ``-3``… after it: never an earlier run's file."""
    stem, n = f"{date}-million", 1
    while (folder / f"{stem}.json").exists():
        n += 1
        stem = f"{date}-million-{n}"
    return folder / f"{stem}.json"


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.million", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(SIZES), help="posts per store (default 100000 1000000)"
    )
    parser.add_argument("--part", type=int, default=PART, help="documents per corpus part (default 100000)")
    parser.add_argument(
        "--dialect", choices=("sqlite", "postgresql", "both"), default="both", help="stores to measure (default both)"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per measured run (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per operation (default 3)")
    parser.add_argument("--connections", type=int, default=8, help="connections under load (default 8)")
    parser.add_argument(
        "--import-timeout", type=float, default=4 * 3600, help="stop an import after this many seconds (default 4 h)"
    )
    parser.add_argument("--import-only", action="store_true", help="generate and import, measure nothing")
    parser.add_argument("--reimport", action="store_true", help="import again even when a store was imported before")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL databases (for a later run)")
    parser.add_argument("--clean", action="store_true", help="at the end, also delete the corpus and the SQLite stores")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the result file (bench/results)")
    parser.add_argument(
        "--add-to", type=Path, help="an earlier result file to add this run's stores to (written anew, not in place)"
    )
    parser.add_argument("--work", type=Path, default=VAR, help="folder of the corpus and SQLite stores (var/million)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sorted(set(args.sizes))
    dialects = ["sqlite", "postgresql"] if args.dialect == "both" else [args.dialect]
    wrk = load.wrk_version()
    postgres = stores.postgres_version() if "postgresql" in dialects else None
    work: Path = args.work.resolve()
    corpus = work / "corpus"
    began = time.monotonic()
    generated = ensure_parts(parts(corpus, sizes[-1], args.part))
    took = time.monotonic() - began
    _say(f"corpus: {sizes[-1]:,} documents in {corpus} ({generated} part(s) generated in {took:.1f} s)")
    result: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.million", *(sys.argv[1:] if argv is None else argv)]),
        "machine": machine_info(wrk, postgres),
        "config": {
            "sizes": sizes,
            "seed": SEED,
            "part": args.part,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "workers": 1,
            "response_cache": False,
        },
        "stores": {d: {str(s): {} for s in sizes} for d in dialects},
    }
    try:
        for dialect in dialects:
            for size in sizes:
                imported = prepare(dialect, size, work, args.part, args.import_timeout, args.reimport)
                result["stores"][dialect][str(size)]["import"] = imported
        if not args.import_only:
            for dialect in dialects:
                for size in sizes:
                    entry = result["stores"][dialect][str(size)]
                    if not entry["import"].get("finished"):
                        _say(f"[{dialect} {size:,}] not measured: its import did not finish")
                        continue
                    try:
                        entry["serve"] = measure(dialect, size, work, args.duration, args.warmup, args.connections)
                    except Exception as exc:  # a failure at one size is a finding, not the end of the run
                        entry["failure"] = f"{type(exc).__name__}: {exc}"
                        _say(f"[{dialect} {size:,}] FAILED: {entry['failure']}")
    finally:
        result["load_average_at_end"] = load_average()
        if args.add_to is not None:
            result = merged(orjson.loads(args.add_to.read_bytes()), result)
        args.out.mkdir(parents=True, exist_ok=True)
        path = result_path(args.out, result["started"][:10])
        path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
        if "postgresql" in dialects and not args.keep:
            for size in sizes:
                stores.drop_postgres_database(database_name(size))
        if args.clean:
            shutil.rmtree(corpus, ignore_errors=True)
            for size in sizes:
                shutil.rmtree(work / f"n{size}", ignore_errors=True)
    print()
    print(table(result))
    _say(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

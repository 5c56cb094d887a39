"""The soak from the command line: the peak, the fill, the soak, the checks and the verdict."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench import load, stores
from bench.run import machine_info
from bench.soak.checks import judge, read_back_all, verify
from bench.soak.common import (
    FILL_CHUNK_S,
    FILL_SETTLE_CHUNKS,
    FILL_SETTLE_SHARE,
    FILL_SHARE,
    FILL_STALL_MIB,
    MIB,
    PEAK_CONNECTIONS,
    PG_DATABASE,
    READ_MIX,
    RESPONSE_CACHE_BYTES,
    RESULTS,
    SEED,
    SOAK_CONNECTIONS,
    WORK,
    WRITE_MIX,
    WRITE_SHARE,
    _say,
)
from bench.soak.report import _print_sample, plot, result_stem, server_log_digest, summary
from bench.soak.sampling import Sampler, _ratio, process_figures, response_cache_mib
from bench.soak.setup import Config, _add_references, _plan, _read_bodies, _tracked
from bench.soak.traffic import Traffic, _percentiles

# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--dialect", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the soak (default 30)")
    parser.add_argument("--seconds", type=float, help="length of the soak in seconds (instead of --minutes)")
    parser.add_argument("--posts", type=int, default=20_000, help="synthesized posts in the store (default 20,000)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, help="requests per second (no peak measurement)")
    pace.add_argument("--load", type=float, default=0.7, help="share of the measured peak (default 0.7)")
    parser.add_argument("--peak-seconds", type=float, default=20.0, help="each closed-loop peak run (default 20)")
    parser.add_argument(
        "--peak-of",
        choices=("mix", "reads"),
        default="mix",
        help="the peak --load is a share of: the 95/5 mix's (default) or the reads' alone",
    )
    parser.add_argument(
        "--fill-minutes",
        type=float,
        default=20.0,
        help="longest fill of the server's caches at saturation before the soak (default 20; 0: none)",
    )
    parser.add_argument("--sample-seconds", type=float, help="sampling interval (60; a tenth of runs under 10 min)")
    parser.add_argument("--connections", type=int, default=SOAK_CONNECTIONS, help="open connections (default 32)")
    parser.add_argument("--cli-exports", type=int, default=10, help="imports also checked with `alphanode export`")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the result files (bench/results)")
    parser.add_argument("--work", type=Path, default=WORK, help="corpus, SQLite store and logs (var/soak)")
    return parser.parse_args(argv)


def _config(args: argparse.Namespace) -> Config:
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    sample = args.sample_seconds or (60.0 if seconds >= 600 else seconds / 10)
    return Config(
        dialect=args.dialect,
        posts=args.posts,
        seconds=seconds,
        peak_seconds=args.peak_seconds,
        load=args.load,
        rate=args.rate,
        peak_of=args.peak_of,
        fill_seconds=args.fill_minutes * 60,
        sample_seconds=sample,
        connections=args.connections,
        cli_exports=args.cli_exports,
        seed=SEED,
        out=args.out,
        work=args.work,
    )


def _build_store(config: Config) -> tuple[stores.Store, dict[str, Any]]:
    """A new store of the corpus: a SQLite file under the work folder, or the soak's PostgreSQL database."""
    started = time.perf_counter()
    if stores.ensure_corpus(config.corpus, config.posts, config.seed):
        _say(f"  generated {config.posts:,} documents in {time.perf_counter() - started:.1f} s")
    if config.dialect == "sqlite":
        path = config.work / "sqlite.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        stores.remove_sqlite(path)
        store = stores.sqlite_store(path)
    else:
        stores.create_postgres_database(PG_DATABASE)
        store = stores.postgres_store(PG_DATABASE)
    timing = stores.import_corpus(store, config.corpus, config.posts)
    _say(f"  imported {timing.created:,} documents in {timing.wall_seconds:.1f} s")
    if config.dialect == "postgresql":
        _say(f"  VACUUM (ANALYZE) in {stores.settle_postgres(PG_DATABASE):.1f} s")
    return store, timing.as_dict()


async def _peak(traffic: Traffic, server: load.Server, seconds: float, mix: str) -> dict[str, Any]:
    """Requests per second at saturation: a closed loop of the reads alone, or of the soak's mix."""
    traffic.take_window()
    cpu_before = await asyncio.to_thread(load.cpu_seconds, server.pid)
    done, elapsed = await traffic.closed_loop(seconds, PEAK_CONNECTIONS, reads_only=mix == "reads")
    cpu = await asyncio.to_thread(load.cpu_seconds, server.pid) - cpu_before
    window = traffic.take_window()
    return {
        "server_cpu_percent_of_one_core": round(cpu / elapsed * 100, 1),
        "seconds": round(elapsed, 1),
        "connections": PEAK_CONNECTIONS,
        "requests": done,
        "rps": round(done / elapsed, 1),
        **{k: v for k, v in _percentiles(window.reads + window.writes).items() if k != "count"},
        "writes": len(window.writes),
        "errors": window.read_errors + window.write_errors,
        "hit_ratio": _ratio(window.cache),
    }


async def _fill(traffic: Traffic, server: load.Server, seconds: float) -> dict[str, Any]:
    """Warm the server's bounded caches before the soak, for at most ``seconds``.

    First the reads alone at saturation, until the response cache holds ``FILL_SHARE`` of its
    bound or stops growing; then the soak's mix at saturation (the caches writes bring: search
    matches and rankings at each new store version, statements, counts), until the server's USS
    settles: its mean over the last ``FILL_SETTLE_CHUNKS`` looks at most ``FILL_SETTLE_SHARE``
    above that of the looks before.
    """
    traffic.take_window()
    before = await asyncio.to_thread(process_figures, server.pid)
    cache_before = await asyncio.to_thread(response_cache_mib, server.port)
    bound = RESPONSE_CACHE_BYTES / MIB
    started = time.perf_counter()
    requests, errors, cache = 0, 0, cache_before or 0.0
    stages: dict[str, Any] = {}
    step = min(FILL_CHUNK_S, seconds / 8)  # shorter steps for a short fill (the smoke test's)

    def left() -> float:
        return seconds - (time.perf_counter() - started)

    async def chunk(reads_only: bool) -> None:
        nonlocal requests, errors
        done, _ = await traffic.closed_loop(min(step, left()), PEAK_CONNECTIONS, reads_only=reads_only)
        window = traffic.take_window()
        requests, errors = requests + done, errors + window.read_errors + window.write_errors + window.unanswered

    why = "time"
    while left() > 0:
        await chunk(reads_only=True)
        now = await asyncio.to_thread(response_cache_mib, server.port)
        if now is None:
            why = "no response cache size in /metrics"
            break
        grew, cache = now - cache, now
        if cache >= bound * FILL_SHARE:
            why = f"the response cache holds {FILL_SHARE:.0%} of its bound"
            break
        if grew < FILL_STALL_MIB:
            why = f"the response cache grew less than {FILL_STALL_MIB} MiB in {step:.0f} s"
            break
    stages["reads"] = {"seconds": round(time.perf_counter() - started, 1), "ended": why}

    looks: list[float] = []
    why = "time"
    while left() > 0:
        await chunk(reads_only=False)
        figures = await asyncio.to_thread(process_figures, server.pid)
        if figures is None:
            why = "the server is gone"
            break
        looks.append(figures["uss_mib"])
        n = FILL_SETTLE_CHUNKS
        if len(looks) >= 2 * n and np.mean(looks[-n:]) <= np.mean(looks[-2 * n : -n]) * (1 + FILL_SETTLE_SHARE):
            why = f"USS rose less than {FILL_SETTLE_SHARE:.0%} over the last {n * step:.0f} s"
            break
    stages["mix"] = {
        "seconds": round(time.perf_counter() - started - stages["reads"]["seconds"], 1),
        "ended": why,
        "uss_mib": looks,
    }
    cache = await asyncio.to_thread(response_cache_mib, server.port) or cache
    after = await asyncio.to_thread(process_figures, server.pid)
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "requests": requests,
        "errors": errors,
        "ended": f"reads: {stages['reads']['ended']}; mix: {stages['mix']['ended']}",
        "stages": stages,
        "response_cache_mib": {"before": cache_before, "after": cache, "bound": round(bound, 1)},
        "uss_mib": {"before": before["uss_mib"] if before else None, "after": after["uss_mib"] if after else None},
    }


async def session(
    traffic: Traffic, server: load.Server, store: stores.Store, config: Config, result: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Peak, soak and the read-back of every write, on one event loop; fills ``result``."""
    await traffic.pool.open()
    try:
        rate = config.rate
        if rate is None:
            result["peak"] = {"of": config.peak_of}
            for mix in ("reads", "mix"):
                result["peak"][mix] = peak = await _peak(traffic, server, config.peak_seconds, mix)
                _say(
                    f"peak, closed loop of {'the reads' if mix == 'reads' else 'the 95/5 mix'} "
                    f"({PEAK_CONNECTIONS} connections, {peak['seconds']:.0f} s): {peak['rps']:.1f} req/s, "
                    f"p50 {peak['p50_ms']} ms, p99 {peak['p99_ms']} ms, {peak['errors']} errors, "
                    f"server CPU {peak['server_cpu_percent_of_one_core']}% of one core"
                )
            rate = result["peak"][config.peak_of]["rps"] * config.load
        result["target_rps"] = round(rate, 1)
        result["fill"] = None
        if config.fill_seconds > 0:
            result["fill"] = fill = await _fill(traffic, server, config.fill_seconds)
            _say(
                f"fill at saturation (reads, then the mix) for {fill['seconds']:.0f} s ({fill['requests']:,} requests, "
                f"{fill['errors']} errors): response cache {fill['response_cache_mib']['before']} -> "
                f"{fill['response_cache_mib']['after']} MiB, USS {fill['uss_mib']['before']} -> "
                f"{fill['uss_mib']['after']} MiB; ended: {fill['ended']}"
            )
        database = PG_DATABASE if store.dialect == "postgresql" else None
        sampler = Sampler(traffic, server, store, database)
        _say(f"soak: open loop at {rate:.1f} req/s for {config.seconds / 60:.1f} min, {config.connections} connections")
        _print_sample(await sampler.sample())
        ticking = asyncio.create_task(sampler.every(config.sample_seconds, config.seconds))
        scheduled = await traffic.open_loop(rate, config.seconds)
        ticking.cancel()
        _print_sample(await sampler.sample())
        result["soak_wall_seconds"] = round(time.perf_counter() - sampler.started, 1)
        result["_scheduled"] = scheduled
        result["_samples"] = sampler.samples
        _say(f"checking {sum(traffic.write_counts.values())} saved writes")
        return await read_back_all(traffic)
    finally:
        traffic.pool.close()


def _soak_figures(samples: list[dict[str, Any]], scheduled: int, wall: float) -> dict[str, Any]:
    reads = [v for s in samples for v in s["_latencies"][0]]
    writes = [v for s in samples for v in s["_latencies"][1]]
    cache: Counter[str] = Counter()
    for s in samples:
        cache.update(s["cache"])
    completed = len(reads) + len(writes)
    return {
        "scheduled": scheduled,
        "completed": completed,
        "achieved_rps": round(completed / wall, 1) if wall else 0.0,
        "errors": sum(s["errors"] for s in samples),
        "all": _percentiles(reads + writes),
        "reads": _percentiles(reads),
        "writes": _percentiles(writes),
        "cache": dict(cache),
        "hit_ratio": _ratio(cache),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = _config(args)
    postgres = None
    if config.dialect == "postgresql":
        try:
            postgres = stores.postgres_version()
        except Exception as exc:
            print(f"PostgreSQL does not answer at {stores.PG_HOST}:{stores.PG_PORT} ({exc})", file=sys.stderr)
            return 2
    started = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    command = " ".join(["python -m bench.soak", *(sys.argv[1:] if argv is None else argv)]).strip()
    rng = random.Random(f"{config.seed}:soak")
    result: dict[str, Any] = {
        "kind": "soak",
        "dialect": config.dialect,
        "started": started,
        "command": command,
        "config": {
            **{k: v for k, v in asdict(config).items() if k not in ("out", "work")},
            "read_mix_percent": READ_MIX,
            "write_share": WRITE_SHARE,
            "write_mix": WRITE_MIX,
            "peak_connections": PEAK_CONNECTIONS,
        },
        "machine": machine_info("none: an asyncio HTTP/1.1 client (bench/soak/)", postgres),
        "peak": None,
    }
    _say(f"[{config.dialect}] store of {config.posts:,} posts")
    store, result["import"] = _build_store(config)
    log = config.work / "logs" / f"{config.dialect}-server.log"
    try:
        token = stores.editor_token(store)
        _say("  request bodies from the store (bench/workload.py)")
        bodies, references = asyncio.run(_read_bodies(store.url, config.posts, config.seed))
        reads, edited_slugs = _plan(bodies, references, rng)
        env = {"ALPHANODE_CACHE": "true", "ALPHANODE_CACHE_MAX_BYTES": str(RESPONSE_CACHE_BYTES)}
        with load.serve(load.GRAPHQL_APP, store.url, log, env=env) as server:
            tracked = _tracked(server, token, edited_slugs)
            _add_references(reads, tracked, references, rng)
            result["bodies"] = {op: len(found) for op, found in reads.items()}
            result["posts_edited_pool"] = len(tracked)
            traffic = Traffic(server.port, token, reads, tracked, rng, config.connections)
            stored, public = asyncio.run(session(traffic, server, store, config, result))
            result["server_log"] = server_log_digest(log)
        verification = verify(traffic, stored, public, store.url, config.cli_exports, rng)
    finally:
        if config.dialect == "postgresql":
            stores.drop_postgres_database(PG_DATABASE)
        else:
            stores.remove_sqlite(config.work / "sqlite.db")

    _conclude(result, traffic, verification, config)
    return _write_out(result, traffic, config, started)


def _conclude(result: dict[str, Any], traffic: Traffic, verification: dict[str, Any], config: Config) -> None:
    """The figures of the soak and its verdict, from its samples."""
    samples = result.pop("_samples")
    wall = result.pop("soak_wall_seconds")
    result["soak"] = {**_soak_figures(samples, result.pop("_scheduled"), wall), "wall_seconds": wall}
    result["writes"] = {
        "saved": sum(traffic.write_counts.values()),
        "failed": sum(traffic.write_failures.values()),
        "by_kind": dict(traffic.write_counts),
        "failed_by_kind": dict(traffic.write_failures),
        "failed_but_in_the_store": dict(traffic.failed_but_written),
    }
    result["verification"] = verification
    first, last = samples[0], samples[-1]
    generator_cpu = last["generator_cpu_seconds"]
    server_cpu = last["server"]["cpu_seconds"] - first["server"]["cpu_seconds"]
    result["generator"] = {
        "cpu_seconds": generator_cpu,
        "cpu_percent_of_one_core": round(generator_cpu / wall * 100, 1),
        "server_cpu_seconds": round(server_cpu, 1),
        "server_cpu_percent_of_one_core": round(server_cpu / wall * 100, 1),
    }
    peak_errors = result["peak"]["reads"]["errors"] + result["peak"]["mix"]["errors"] if result["peak"] else 0
    peak_errors += result["fill"]["errors"] if result["fill"] else 0
    result["verdict"] = judge(samples, config.seconds, peak_errors, verification, result["writes"]["saved"])
    result["errors_seen"] = traffic.errors_seen
    result["samples"] = [{k: v for k, v in s.items() if k != "_latencies"} for s in samples]


def _write_out(result: dict[str, Any], traffic: Traffic, config: Config, started: str) -> int:
    """Write the result and its plot, print the summary; the exit status."""
    config.out.mkdir(parents=True, exist_ok=True)
    stem = result_stem(config.out, started[:10], config.dialect)
    stem.with_suffix(".json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    plot(result, stem.with_suffix(".png"))
    print(summary(result))
    if traffic.errors_seen:
        _say("first errors:")
        for error in traffic.errors_seen[:5]:
            _say(f"  {error['operation']} {error['status']}: {error['detail'][:300]}")
    _say(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.png')}")
    return 0 if result["verdict"]["passed"] else 1

"""A worker's memory after start-up, on an empty store and on a large one: ``python -m bench.memory``.

Method
------
1. **Stores.** A new empty SQLite store (``alphanode init``) and ``--store`` (a SQLite or
   PostgreSQL URL of a store already imported, for example 100,000 posts).
2. **Servers.** ``alphanode serve --workers N`` for each N of ``--workers`` (default 1 and 2), on
   each store, one at a time (``bench/workers.py``'s ``serve``: the response cache off, the
   server settled: every worker up, the processes idle). The seconds from the command to the
   settled server are recorded (each worker has loaded the fact index by then).
3. **Requests.** One of each of the frontend's reads (a post page, a listing, a filtered
   listing, a search, the facets), so that what the first requests load is counted too.
4. **Memory.** Each process's USS, PSS and RSS (psutil ``memory_full_info``): a worker's USS is
   what it holds alone, which N workers hold N times. The difference between the stores is what
   the store's size costs each worker.
5. **After writes** (``--writes N``): N ``setStatus`` edits of distinct posts through the API
   with an editor token (``alphanode token create``), each worker's index follows them, one
   worker publishes the changed index and the others map it (``loaders.fact_files``: at most
   every ``PUBLISH_INTERVAL`` seconds); after the interval, the reads again, several times so
   that every worker serves some, then each process's memory again.
6. **Where it goes** (``--breakdown``): the fact index of ``--store`` loaded in this process,
   its parts' sizes: the arrays (``nbytes``), the titles (Python strings), the vocabularies,
   and on SQLite the search statistics (``loaders.postings``).

Output: a table on standard output and ``bench/results/<date>-memory.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bench.stores import ROOT, Store, editor_token, run_cli
from bench.workers import _memory, serve

RESULTS = ROOT / "bench" / "results"
READS = {
    "post page": ("post-page.graphql", "PostPage", None),
    "listing": ("listing.graphql", None, {"first": 20}),
    "filtered listing": ("filtered-listing.graphql", None, {"first": 20, "filter": {"difficulty": "advanced"}}),
    "search": ("search.graphql", None, {"first": 20, "query": "cache"}),
    "facets": ("facets.graphql", None, {}),
}


def _get(base: str, query: str, operation: str | None, variables: dict[str, Any] | None) -> int:
    params = {"query": query, "variables": json.dumps(variables or {})}
    if operation:
        params["operationName"] = operation
    with urllib.request.urlopen(f"{base}/graphql?{urllib.parse.urlencode(params)}", timeout=60) as answer:
        return int(answer.status)


def _first_slug(base: str) -> str:
    query = "{ posts(first: 1) { edges { node { slug } } } }"
    with urllib.request.urlopen(f"{base}/graphql?{urllib.parse.urlencode({'query': query})}", timeout=60) as answer:
        edges = json.loads(answer.read())["data"]["posts"]["edges"]
    return str(edges[0]["node"]["slug"]) if edges else "none"


def one_of_each(base: str) -> dict[str, int]:
    """One of each of the frontend's reads (:data:`READS`) from the server at ``base``; their statuses."""
    slug = _first_slug(base)
    operations = ROOT / "server" / "operations"
    statuses = {}
    for name, (file, operation, variables) in READS.items():
        query = (operations / file).read_text()
        statuses[name] = _get(base, query, operation, {"slug": slug} if variables is None else variables)
    return statuses


SET_STATUS = (
    "mutation SetStatus($id: ID!, $status: String!) { result: setStatus(id: $id, status: $status) { __typename } }"
)


def _post(base: str, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        found: dict[str, Any] = json.loads(answer.read())
    return found


def edit(base: str, writes: int, token: str) -> list[str]:
    """``writes`` setStatus edits of the first posts, a status each that differs from the last run's."""
    query = "query Ids($first: Int!) { posts(first: $first) { edges { node { id } } } }"
    ids = [e["node"]["id"] for e in _post(base, query, {"first": writes}, token)["data"]["posts"]["edges"]]
    status = f"bench-{time.time_ns()}"
    kinds = []
    for post_id in ids:
        answer = _post(base, SET_STATUS, {"id": post_id, "status": status}, token)
        kinds.append(answer.get("data", {}).get("result", {}).get("__typename") or str(answer.get("errors")))
    return kinds


def _memory_of(server: Any, workers: int) -> dict[str, Any]:
    processes = _memory(server, workers)
    worker = [p for p in processes if p["role"] == "worker"]
    return {
        "processes": processes,
        "uss_per_worker_mib": [p["uss_mib"] for p in worker],
        "pss_per_worker_mib": [p["pss_mib"] for p in worker],
        "rss_per_worker_mib": [p["rss_mib"] for p in worker],
    }


def measure(url: str, workers: int, log: Path, writes: int = 0) -> dict[str, Any]:
    token = editor_token(Store("sqlite" if url.startswith("sqlite") else "postgresql", url)) if writes else ""
    started = time.monotonic()
    with serve(url, workers, log) as server:
        ready = time.monotonic() - started
        base = f"http://127.0.0.1:{server.port}"
        statuses = one_of_each(base)
        run: dict[str, Any] = {"workers": workers, "ready_s": round(ready, 2), "statuses": statuses}
        run.update(_memory_of(server, workers))
        if writes:
            from loaders.facts import PUBLISH_INTERVAL

            results = edit(base, writes, token)
            time.sleep(PUBLISH_INTERVAL + 1.0)
            for _ in range(4 * workers):
                one_of_each(base)
            run["after_writes"] = {"writes": writes, "results": sorted(set(results)), **_memory_of(server, workers)}
    return run


def breakdown(url: str) -> dict[str, float]:
    """The fact index of ``url`` loaded here: MiB of each part."""
    from loaders import ReadPool
    from loaders.db import RequestDb

    async def load() -> dict[str, float]:
        pool = await ReadPool.open(url)
        db = RequestDb(pool)
        try:
            facts = await pool.facts.at(db)
        finally:
            await db.close()
            await pool.close()
        assert facts is not None
        arrays = [facts.present, *facts.codes.values(), *facts.flags.values(), *facts.numbers.values()]
        links = [a for pair in facts.links.values() for a in pair]
        mib = 1024 * 1024
        parts = {
            "arrays by post id": sum(a.nbytes for a in arrays) / mib,
            "link arrays": sum(a.nbytes for a in links) / mib,
            "titles (one UTF-8 buffer and offsets)": facts.titles.nbytes / mib,
        }
        if facts.text is not None:
            parts["search: post lengths and kept posting lists (SQLite)"] = (
                facts.text.sizes.nbytes + facts.text.changed.nbytes + facts.text.lists.nbytes
            ) / mib
        return {k: round(v, 1) for k, v in parts.items()}

    return asyncio.run(load())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", required=True, help="URL of an imported store (sqlite:///… or postgresql://…)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    parser.add_argument("--writes", type=int, default=0, help="edits through the API, then memory again (default 0)")
    parser.add_argument("--breakdown", action="store_true", help="also the fact index's parts, loaded here")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the result file (bench/results)")
    args = parser.parse_args(argv)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="alphanode-memory-") as folder:
        empty = f"sqlite:///{folder}/empty.db"
        done = run_cli("init", "--database", empty)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        for label, url in (("empty", empty), ("store", args.store)):
            for workers in args.workers:
                writes = args.writes if label == "store" else 0
                run = measure(url, workers, Path(folder) / f"{label}-{workers}.log", writes)
                run["store"] = label
                runs.append(run)
                print(
                    f"{label:6s} {workers} worker(s): ready in {run['ready_s']} s, USS/worker "
                    f"{run['uss_per_worker_mib']} MiB, PSS/worker {run['pss_per_worker_mib']} MiB",
                    flush=True,
                )
                if "after_writes" in run:
                    after = run["after_writes"]
                    print(
                        f"       after {after['writes']} writes ({', '.join(after['results'])}): USS/worker "
                        f"{after['uss_per_worker_mib']} MiB, PSS/worker {after['pss_per_worker_mib']} MiB",
                        flush=True,
                    )
    result: dict[str, Any] = {
        "command": "python -m bench.memory " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{os.cpu_count()} cores",
        "store": args.store,
        "runs": runs,
    }
    if args.breakdown:
        result["fact_index_mib"] = breakdown(args.store)
        print("fact index:", result["fact_index_mib"])
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{dt.date.today().isoformat()}-memory.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

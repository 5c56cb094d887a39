"""Redis and PostgreSQL stopped under load, as a user would try it: ``python -m bench.outages``.

Method
------
1. **Parts.** A private PostgreSQL cluster and a private ``redis-server`` (``tests/parts``: free
   ports, folders of their own, stopped by process id; the machine's shared servers are never
   touched), a store of ``--posts`` synthesized posts imported with ``alphanode import``, an
   editor token, and ``alphanode serve`` with ``ALPHANODE_REDIS_URL`` (one worker).
2. **Traffic.** ``--clients`` loops, each running ``curl`` once per request, as an operator
   would: GET post pages (a few popular slugs, so the cache hits) and listings, anonymous;
   one more loop POSTs an ``updatePost`` of one post with the editor token every half second;
   another asks ``/healthz`` every quarter second. Every answer is recorded: the time it was
   sent, the status, ``errors[0].extensions.code``, curl's total time, and the cache part of
   ``Server-Timing``.
3. **Timeline.** ``--phase`` seconds (default 10) each: steady; Redis stopped; Redis started
   again; PostgreSQL stopped (``pg_ctl stop -m fast``); PostgreSQL started again.
4. **Report.** Per phase: answers by status and code, the slowest answer, ``/healthz``'s
   answers; recovery times: from Redis answering PING again to the first cache hit, and from
   PostgreSQL accepting connections again to the first 200 that read the database (not a cache
   hit); stale reads: an anonymous read of the edited post that started more than a second after
   a write answered ``PostSaved`` and shows an older title. Written to
   ``bench/results/<date>-outages.json`` (``--out``) and printed as a table.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.load import free_port, run_server
from bench.stores import ROOT, Store, editor_token, ensure_corpus, import_corpus
from tests.parts.postgres import PrivatePostgres
from tests.parts.redis import RedisServer

RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "var" / "outages"
PURGE_GRACE = 1.0  # a write is purged everywhere within this (the purge interval is 0.1 s)
POST_PAGE = (ROOT / "server" / "operations" / "post-page.graphql").read_text()
LISTING = (ROOT / "server" / "operations" / "listing.graphql").read_text()
UPDATE = (
    "mutation Update($id: ID!, $title: String!, $hash: String!) { result: updatePost(id: $id, "
    "input: {title: $title}, expectedHash: $hash) { __typename ... on PostSaved { post { contentHash } } "
    "... on Conflict { currentHash } } }"
)
PHASES = ("steady", "redis stopped", "redis back", "postgres stopped", "postgres back")


@dataclass(slots=True)
class Answer:
    sent: float  # seconds since the start
    kind: str  # read, write, health
    status: int
    code: str | None
    seconds: float
    cache: str | None = None
    title: str | None = None


@dataclass(slots=True)
class Run:
    started: float = field(default_factory=time.monotonic)
    answers: list[Answer] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)  # event -> seconds since the start
    saved: list[tuple[float, str]] = field(default_factory=list)  # (answered at, title) of each saved write
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.monotonic() - self.started

    def mark(self, event: str) -> None:
        self.marks[event] = self.now()
        print(f"{self.marks[event]:7.2f} s  {event}", flush=True)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)


def curl(args: list[str]) -> tuple[int, dict[str, str], bytes, float]:
    """One request with curl: (status, lower-cased headers, body, total seconds); status 0 when curl failed."""
    with tempfile.NamedTemporaryFile() as headers, tempfile.NamedTemporaryFile() as body:
        done = subprocess.run(
            [
                "curl",
                "-s",
                "--max-time",
                "20",
                "-D",
                headers.name,
                "-o",
                body.name,
                "-w",
                "%{http_code} %{time_total}",
                *args,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        status_text, _, seconds = done.stdout.partition(" ")
        parsed: dict[str, str] = {}
        for line in Path(headers.name).read_text(errors="replace").splitlines()[1:]:
            name, sep, value = line.partition(":")
            if sep:
                parsed[name.strip().lower()] = value.strip()
        return int(status_text or 0), parsed, Path(body.name).read_bytes(), float(seconds or 0)


def _code_and_data(body: bytes) -> tuple[str | None, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        return None, None
    errors = document.get("errors") or []
    code = (errors[0].get("extensions") or {}).get("code") if errors else None
    return code, document.get("data")


def _cache_part(headers: dict[str, str]) -> str | None:
    timing = headers.get("server-timing", "")
    mark = timing.find('cache;desc="')
    return timing[mark + 12 : timing.find('"', mark + 12)] if mark >= 0 else None


def reader(run: Run, base: str, slugs: list[str], rare: list[str], tracked: str, seed: int) -> None:
    """Reads until told to stop: a listing, or a post page (the edited post, a popular one, or any post of
    the store, which the cache seldom holds)."""
    draw = random.Random(seed)
    while not run.stop.is_set():
        sent = run.now()
        pick = draw.random()
        if pick < 0.2:
            args = [
                "-G",
                f"{base}/graphql",
                "--data-urlencode",
                f"query={LISTING}",
                "--data-urlencode",
                'variables={"first": 10}',
            ]
        else:
            slug = tracked if pick < 0.4 else draw.choice(rare) if pick < 0.55 else draw.choice(slugs)
            args = [
                "-G",
                f"{base}/graphql",
                "--data-urlencode",
                f"query={POST_PAGE}",
                "--data-urlencode",
                "operationName=PostPage",
                "--data-urlencode",
                "variables=" + json.dumps({"slug": slug}),
            ]
        status, headers, body, seconds = curl(args)
        code, data = _code_and_data(body)
        title = None
        if data and isinstance(data.get("post"), dict) and args[-1].endswith(json.dumps({"slug": tracked})):
            title = data["post"]["title"]
        run.add(Answer(sent, "read", status, code, seconds, _cache_part(headers), title))


def writer(run: Run, base: str, token: str, post_id: str, content_hash: str) -> None:
    n = 0
    while not run.stop.is_set():
        n += 1
        title = f"Outage trial edit {n}"
        variables = {"id": post_id, "title": title, "hash": content_hash}
        sent = run.now()
        status, _, body, seconds = curl(
            [
                "-X",
                "POST",
                f"{base}/graphql",
                "-H",
                "content-type: application/json",
                "-H",
                f"authorization: Bearer {token}",
                "--data",
                json.dumps({"query": UPDATE, "variables": variables}),
            ]
        )
        code, data = _code_and_data(body)
        result = (data or {}).get("result") or {}
        if result.get("__typename") == "PostSaved":
            content_hash = result["post"]["contentHash"]
            with run.lock:
                run.saved.append((run.now(), title))
        elif result.get("__typename") == "Conflict":  # a write that committed though its answer was lost
            content_hash = result["currentHash"]
        run.add(Answer(sent, "write", status, code or result.get("__typename"), seconds))
        run.stop.wait(0.5)


def health(run: Run, base: str) -> None:
    while not run.stop.is_set():
        sent = run.now()
        status, _, body, seconds = curl([f"{base}/healthz"])
        try:
            said = json.loads(body)
        except ValueError:
            said = {}
        run.add(Answer(sent, "health", status, f"{said.get('database')}/{said.get('cache')}", seconds))
        run.stop.wait(0.25)


PAGE = (
    "query Page($after: String) { posts(first: 100, after: $after) { pageInfo { endCursor hasNextPage } "
    "edges { node { id slug title contentHash } } } }"
)


def _all_posts(base: str, most: int = 1_000) -> list[dict[str, Any]]:
    """The store's first ``most`` posts (id, slug, title, content hash), a page of 100 at a time."""
    found: list[dict[str, Any]] = []
    after = None
    while len(found) < most:
        status, _, body, _ = curl(
            [
                "-X",
                "POST",
                f"{base}/graphql",
                "-H",
                "content-type: application/json",
                "--data",
                json.dumps({"query": PAGE, "variables": {"after": after}}),
            ]
        )
        if status != 200:
            raise RuntimeError(f"listing the posts answered {status}: {body[:300]!r}")
        posts = json.loads(body)["data"]["posts"]
        found += [edge["node"] for edge in posts["edges"]]
        if not posts["pageInfo"]["hasNextPage"]:
            break
        after = posts["pageInfo"]["endCursor"]
    return found


def _edition(title: str | None) -> int:
    """Which write a title is from: 0 for the imported one."""
    prefix = "Outage trial edit "
    return int(title[len(prefix) :]) if title and title.startswith(prefix) else 0


def stale_reads(run: Run) -> list[dict[str, Any]]:
    """Reads of the edited post, sent more than PURGE_GRACE after a write answered, that show an older title."""
    stale = []
    for answer in run.answers:
        if answer.kind != "read" or answer.title is None:
            continue
        due = [title for at, title in run.saved if at <= answer.sent - PURGE_GRACE]
        if due and _edition(answer.title) < _edition(due[-1]):
            stale.append({"sent": round(answer.sent, 2), "shown": answer.title, "due": due[-1]})
    return stale


def recovery(run: Run, after: str, hit: bool) -> float | None:
    """Seconds from the event ``after`` to the end of the first read answered 200 from the cache (``hit``) or
    from the database (not a hit) that was sent after it; None when none was."""
    start = run.marks[after]
    for answer in sorted(run.answers, key=lambda a: a.sent):
        served = answer.kind == "read" and answer.status == 200 and answer.code is None
        if served and answer.sent >= start and (answer.cache == "hit") == hit:
            return round(answer.sent + answer.seconds - start, 3)
    return None


def summary(run: Run) -> dict[str, Any]:
    bounds = [run.marks[p] for p in PHASES] + [run.marks["end"]]
    phases: dict[str, Any] = {}
    for n, phase in enumerate(PHASES):
        mine = [a for a in run.answers if bounds[n] <= a.sent < bounds[n + 1]]
        by_kind: dict[str, Any] = {}
        for kind in ("read", "write", "health"):
            answers = [a for a in mine if a.kind == kind]
            counts = collections.Counter(f"{a.status} {a.code or ''}".strip() for a in answers)
            by_kind[kind] = {
                "answers": dict(counts.most_common()),
                "slowest_s": round(max((a.seconds for a in answers), default=0.0), 3),
            }
        by_kind["read"]["cache"] = dict(collections.Counter(a.cache or "-" for a in mine if a.kind == "read"))
        phases[phase] = by_kind
    return {
        "phases": phases,
        "marks": {k: round(v, 3) for k, v in run.marks.items()},
        "recovery_s": {
            "redis: PING answered -> first cache hit": recovery(run, "redis back", hit=True),
            "postgres: accepting connections -> first 200 from the database": recovery(run, "postgres back", hit=False),
        },
        "writes_saved": len(run.saved),
        "unexpected": unexpected(run),
    }


def unexpected(run: Run) -> list[dict[str, Any]]:
    """Answers other than a 200 without error and the documented 503 (``DATABASE_UNAVAILABLE``,
    ``Retry-After``): a 500, a time-out, a GraphQL error in a 200, curl getting no answer."""
    found = []
    for answer in run.answers:
        if answer.kind == "health":
            ok = answer.status in (200, 503)
        else:
            ok = (answer.status == 200 and answer.code in (None, "PostSaved", "Conflict")) or (
                answer.status == 503 and answer.code == "DATABASE_UNAVAILABLE"
            )
        if not ok:
            found.append(asdict(answer))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--posts", type=int, default=2_000, help="synthesized posts in the store (default 2,000)")
    parser.add_argument("--phase", type=float, default=10.0, help="seconds of each phase (default 10)")
    parser.add_argument("--clients", type=int, default=4, help="curl loops of reads (default 4)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder of the result file (bench/results)")
    parser.add_argument("--work", type=Path, default=WORK, help="corpus and server log (var/outages)")
    args = parser.parse_args(argv)
    corpus = args.work / f"n{args.posts}" / "corpus"
    ensure_corpus(corpus, args.posts, 7)
    with PrivatePostgres.create() as pg, tempfile.TemporaryDirectory(prefix="alphanode-redis-") as folder:
        redis = RedisServer(Path(folder))
        redis.start()
        try:
            pg.execute("CREATE DATABASE alphanode")
            store = Store("postgresql", pg.url("alphanode"))
            import_corpus(store, corpus, args.posts)
            token = editor_token(store)
            env = {
                **os.environ,
                "ALPHANODE_DATABASE_URL": store.url,
                "ALPHANODE_REDIS_URL": redis.url,
                "ALPHANODE_LOG_LEVEL": "warning",
            }
            port = free_port()
            command = [sys.executable, "-m", "server.cli", "serve", "--port", str(port)]
            with run_server("alphanode serve", command, port, env, args.work / "server.log") as server:
                result = trial(args, f"http://127.0.0.1:{server.port}", token, pg, redis)
        finally:
            redis.stop()
    result.update(command="python -m bench.outages " + " ".join(argv if argv is not None else sys.argv[1:]))
    result.update(machine=f"{os.cpu_count()} cores", posts=args.posts, phase_s=args.phase, clients=args.clients)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{dt.date.today().isoformat()}-outages.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(json.dumps({k: result[k] for k in ("recovery_s", "stale_reads", "unexpected", "writes_saved")}, indent=2))
    print(f"written to {path}")
    passed = not result["stale_reads"] and not result["unexpected"] and all(result["recovery_s"].values())
    return 0 if passed else 1


def table(result: dict[str, Any]) -> str:
    """The phases as a Markdown table: reads, writes and /healthz answers, the slowest read."""
    lines = ["| phase | reads (cache) | writes | /healthz | slowest read |", "| --- | --- | --- | --- | --: |"]
    for phase, kinds in result["phases"].items():
        cells = [
            ", ".join(f"{n} × {k}" for k, n in kinds[kind]["answers"].items()) for kind in ("read", "write", "health")
        ]
        cache = ", ".join(f"{k} {n}" for k, n in kinds["read"]["cache"].items())
        lines.append(f"| {phase} | {cells[0]} ({cache}) | {cells[1]} | {cells[2]} | {kinds['read']['slowest_s']} s |")
    return "\n".join(lines)


def trial(args: argparse.Namespace, base: str, token: str, pg: PrivatePostgres, redis: RedisServer) -> dict[str, Any]:
    nodes = _all_posts(base)
    tracked, popular = nodes[0], [n["slug"] for n in nodes[1:40]]
    rare = [n["slug"] for n in nodes[40:]]
    run = Run()
    threads = [
        threading.Thread(target=reader, args=(run, base, popular, rare, tracked["slug"], seed))
        for seed in range(args.clients)
    ]
    threads.append(threading.Thread(target=writer, args=(run, base, token, tracked["id"], tracked["contentHash"])))
    threads.append(threading.Thread(target=health, args=(run, base)))
    run.mark("steady")
    for thread in threads:
        thread.start()
    try:
        time.sleep(args.phase)
        run.mark("redis stopped")  # from the moment it is asked to stop
        redis.stop()
        time.sleep(args.phase)
        redis.start()
        run.mark("redis back")  # once it answers PING
        time.sleep(args.phase)
        run.mark("postgres stopped")
        pg.stop()
        time.sleep(args.phase)
        pg.start()
        run.mark("postgres back")  # once it accepts connections (pg_ctl start -w)
        time.sleep(args.phase)
    finally:
        run.mark("end")
        run.stop.set()
        for thread in threads:
            thread.join()
    result = summary(run)
    result["stale_reads"] = stale_reads(run)
    return result


if __name__ == "__main__":
    raise SystemExit(main())

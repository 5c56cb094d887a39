"""The run's configuration, its store and the request bodies drawn from it."""

from __future__ import annotations

import random
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench import load, workload
from bench.soak.common import HOST, POST_FIELDS
from bench.soak.traffic import Read, Tracked
from loaders import ReadPool

# -- the run -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Config:
    dialect: str
    posts: int
    seconds: float
    peak_seconds: float
    load: float
    rate: float | None
    peak_of: str  # "mix" or "reads": which peak the rate is a share of
    fill_seconds: float  # longest warm-up of the server's caches before the soak (0: none)
    sample_seconds: float
    connections: int
    cli_exports: int
    seed: int
    out: Path
    work: Path

    @property
    def corpus(self) -> Path:
        return self.work / f"n{self.posts}" / "corpus"


def _sizes(posts: int) -> workload.Sizes:
    return workload.Sizes(
        post_page=posts,  # every post (less the edited ones): more than the cache holds at 20,000
        listing_pages=50,
        filtered_listing=300,
        search=300,
        facets=100,
        entity_page=200,
        sample_posts=2_000,
    )


async def _read_bodies(url: str, posts: int, seed: int) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Each operation's request bodies (bench/workload.py), and every post's reference."""
    pool = await ReadPool.open(url, 2)
    try:
        built = await workload.build(pool, _sizes(posts), seed)
        if built.failures:
            raise SystemExit(f"the API fails to answer the workload's bodies: {built.failures}")
        run = workload.InProcess(pool)
        try:
            references = [str(row[0]) for row in await run.rows("SELECT reference FROM post ORDER BY id")]
        finally:
            run.close()
    finally:
        await pool.close()
    return built.bodies, references


def _variables(variables: dict[str, Any]) -> bytes:
    return urllib.parse.quote(orjson.dumps(variables).decode(), safe="").encode()


def _plan(
    bodies: dict[str, list[dict[str, Any]]], references: list[str], rng: random.Random
) -> tuple[dict[str, list[Read]], list[str]]:
    """The reads, and the references of the posts to edit (none of them read by slug: a new title is a new slug)."""
    post_pages = bodies["PostPage"]
    edited = max(1, min(300, len(post_pages) // 5))
    chosen = set(rng.sample(range(len(post_pages)), edited))
    edited_slugs = {post_pages[i]["variables"]["slug"] for i in chosen}
    reads = {op: [Read(op, _variables(b["variables"])) for b in found] for op, found in bodies.items()}
    reads["PostPage"] = [r for i, r in enumerate(reads["PostPage"]) if i not in chosen]
    return reads, sorted(edited_slugs)


def _graphql(server: load.Server, query: str, variables: dict[str, Any], token: str | None) -> dict[str, Any]:
    """One request outside the load, as an editor when ``token``; its ``data`` (errors raise)."""
    import http.client

    conn = http.client.HTTPConnection(HOST, server.port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("POST", load.PATH, body=orjson.dumps({"query": query, "variables": variables}), headers=headers)
        response = conn.getresponse()
        status, body = response.status, response.read()
    finally:
        conn.close()
    parsed = orjson.loads(body)
    if status != 200 or parsed.get("errors"):
        raise RuntimeError(f"{status}: {body[:500]!r}")
    return dict(parsed["data"])


def _tracked(server: load.Server, token: str, slugs: list[str]) -> list[Tracked]:
    query = "query Slug($slug: String!) { post(slug: $slug) { " + POST_FIELDS + " } }"
    found = []
    for slug in slugs:
        post = _graphql(server, query, {"slug": slug}, token)["post"]
        found.append(
            Tracked(
                id=post["id"],
                reference=post["meta"]["reference"],
                base_title=post["title"],
                title=post["title"],
                status=post["meta"]["revision"]["status"],
                content_hash=post["contentHash"],
            )
        )
    return found


def _add_references(
    reads: dict[str, list[Read]], tracked: list[Tracked], references: list[str], rng: random.Random
) -> None:
    """Post pages by reference: each edited post (the first, popular ones) and as many others."""
    edited = [t.reference for t in tracked]
    others = rng.sample(references, min(len(references), len(edited)))
    reads["PostByReference"] = [Read("PostByReference", _variables({"reference": ref})) for ref in [*edited, *others]]

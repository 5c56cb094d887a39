"""The checks at the end: every write read back through the API and exported byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import random
import subprocess
import sys
import urllib.parse
import urllib.request
from collections import deque
from typing import Any

import numpy as np
import orjson

from bench import load
from bench.soak.common import CONNECTION_SLACK, ERROR_EXAMPLES, FD_SLACK, FLAT_SHARE, P99_FLOOR_MS, READ_BACK, ROOT
from bench.soak.setup import _variables
from bench.soak.traffic import Traffic
from bench.soak.wire import _headers, post_request
from documents import render

# -- checks at the end ---------------------------------------------------------------------


async def _read_back(traffic: Traffic, references: list[str], token: str | None) -> dict[str, Any]:
    """Each post by reference over GraphQL (POST with the token: the store; GET without: what readers get)."""
    found: dict[str, Any] = {}
    queue = deque(references)
    prefix = f"GET {load.PATH}?{urllib.parse.urlencode({'query': READ_BACK})}&variables=".encode()
    tail = _headers(traffic.port) + b"\r\n"

    async def worker() -> None:
        while queue:
            reference = queue.popleft()
            if token is None:
                request = prefix + _variables({"reference": reference}) + tail
            else:
                payload = {"query": READ_BACK, "variables": {"reference": reference}}
                request = post_request(traffic.port, payload, token)
            answer = await traffic.pool.exchange(request)
            parsed = orjson.loads(answer.body) if answer.body else {}
            found[reference] = (parsed.get("data") or {}).get("post") if answer.status == 200 else None

    await asyncio.gather(*(worker() for _ in range(min(8, traffic.pool.size))))
    return found


def _exports(url: str, references: list[str]) -> dict[str, str | None]:
    """Each post's page text as ``alphanode export`` prints it (the same functions, one connection)."""
    import models
    from store.export import find_post_id, load_document

    def export_all(conn: Any) -> dict[str, str | None]:
        texts: dict[str, str | None] = {}
        for reference in references:
            post_id = find_post_id(conn, reference=reference)
            document = None if post_id is None else load_document(conn, post_id)
            texts[reference] = None if document is None else render(document)
        return texts

    async def run() -> dict[str, str | None]:
        engine = models.create_engine(url)
        try:
            async with engine.connect() as conn:
                return dict(await conn.run_sync(export_all))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def cli_export(url: str, reference: str) -> bytes:
    """``alphanode export --reference REF``: its standard output, bytes as they are."""
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "export", "--reference", reference, "--database", url],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 else b""


async def read_back_all(traffic: Traffic) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every edited post and import by reference: as the store holds it, and as readers get it.

    Posts whose last write failed are read first (was it written all the same?), and so are
    the documents whose import failed.
    """
    async with traffic.pool.connection() as conn:
        for post in traffic.tracked:
            if post.uncertain:
                await traffic.refresh(conn, post)
    failed = [i.reference for i in traffic.failed_imports]
    for found in (await _read_back(traffic, failed, traffic.token)).values():
        if found is not None:
            traffic.failed_but_written["importDocument"] += 1
    edited = [t.reference for t in traffic.tracked if t.writes and not t.uncertain]
    references = edited + [i.reference for i in traffic.imports if not i.uncertain]
    return await _read_back(traffic, references, traffic.token), await _read_back(traffic, references, None)


def verify(
    traffic: Traffic, stored: dict[str, Any], public: dict[str, Any], url: str, cli_exports: int, rng: random.Random
) -> dict[str, Any]:
    """Every saved write against the store: lost writes (the store differs) and stale reads (the cache differs)."""
    edited = [t for t in traffic.tracked if t.writes and not t.uncertain]
    mismatches: list[dict[str, Any]] = []
    lost = stale = 0
    for post in edited:
        expected = {"title": post.title, "status": post.status, "contentHash": post.content_hash}
        for where, found in (("store", stored), ("readers", public)):
            got = found.get(post.reference)
            seen = None
            if got is not None:
                seen = {
                    "title": got["title"],
                    "status": got["meta"]["revision"]["status"],
                    "contentHash": got["contentHash"],
                }
            if seen != expected:
                lost += where == "store"
                stale += where == "readers"
                if len(mismatches) < ERROR_EXAMPLES:
                    mismatches.append({"reference": post.reference, "where": where, "expected": expected, "got": seen})
    imports = [i for i in traffic.imports if not i.uncertain]
    texts = _exports(url, [i.reference for i in imports])
    lost_imports = stale_imports = 0
    for imported in imports:
        text = texts.get(imported.reference)
        digest = hashlib.sha256(imported.text.encode("utf-8")).hexdigest()
        got_store, got_public = stored.get(imported.reference), public.get(imported.reference)
        if text != imported.text or got_store is None or got_store["contentHash"] != digest:
            lost_imports += 1
            if len(mismatches) < ERROR_EXAMPLES:
                mismatches.append(
                    {"reference": imported.reference, "where": "import", "export_identical": text == imported.text}
                )
        elif got_public is None or got_public["contentHash"] != digest:
            stale_imports += 1
    sampled = rng.sample(imports, min(cli_exports, len(imports)))
    identical = sum(cli_export(url, i.reference) == i.text.encode("utf-8") for i in sampled)
    return {
        "posts_edited": len([t for t in traffic.tracked if t.writes]),
        "posts_checked": len(edited),
        "posts_uncertain": len([t for t in traffic.tracked if t.uncertain]),
        "imports_checked": len(imports),
        "imports_uncertain": len(traffic.imports) - len(imports),
        "imports_revised": sum(i.revisions for i in traffic.imports),
        "lost_edits": lost,
        "lost_imports": lost_imports,
        "lost_writes": lost + lost_imports,
        "stale_reads": stale + stale_imports,
        "cli_exports": {"checked": len(sampled), "identical": identical},
        "mismatches": mismatches,
    }


# -- verdict -------------------------------------------------------------------------------


def windows(samples: list[dict[str, Any]], seconds: float) -> tuple[tuple[float, float], tuple[float, float], str]:
    """The early and late windows compared (seconds from the start), and how they were chosen."""
    if seconds >= 25 * 60:
        return (5 * 60, 15 * 60), (seconds - 10 * 60, seconds + 1e9), "minutes 5-15 against the last ten"
    third = seconds / 3
    return (0.0, third), (seconds - third, seconds + 1e9), "first third against last third"


def _in(sample: dict[str, Any], window: tuple[float, float]) -> bool:
    return window[0] < sample["t_s"] <= window[1] and sample["requests"] > 0


def judge(
    samples: list[dict[str, Any]], seconds: float, peak_errors: int, verification: dict[str, Any], write_count: int
) -> dict[str, Any]:
    early_w, late_w, how = windows(samples, seconds)
    early = [s for s in samples if _in(s, early_w)]
    late = [s for s in samples if _in(s, late_w)]
    checks: dict[str, dict[str, Any]] = {}
    errors = sum(s["errors"] for s in samples)
    checks["no_errors"] = {"passed": errors == 0 and peak_errors == 0, "soak": errors, "peak_and_fill": peak_errors}
    checks["no_lost_writes"] = {
        "passed": verification["lost_writes"] == 0 and write_count > 0,
        "lost": verification["lost_writes"],
        "saved": write_count,
    }
    checks["no_stale_reads"] = {"passed": verification["stale_reads"] == 0, "stale": verification["stale_reads"]}
    cli = verification["cli_exports"]
    checks["cli_export_identical"] = {"passed": cli["identical"] == cli["checked"], **cli}
    if not early or not late:
        checks["windows"] = {"passed": False, "detail": "too few samples to compare"}
        return {"passed": False, "windows": how, "checks": checks}

    uss_early = float(np.mean([s["server"]["uss_mib"] for s in early]))
    uss_late = float(np.mean([s["server"]["uss_mib"] for s in late]))
    checks["memory_flat"] = {
        "passed": uss_late <= uss_early * (1 + FLAT_SHARE),
        "early_mean_uss_mib": round(uss_early, 1),
        "late_mean_uss_mib": round(uss_late, 1),
        "change": round(uss_late / uss_early - 1, 3),
    }

    def p99(chosen: list[dict[str, Any]]) -> float:
        values = [v for s in chosen for part in s["_latencies"] for v in part]
        return float(np.percentile(np.asarray(values), 99))

    p99_early, p99_late = p99(early), p99(late)
    checks["p99_flat"] = {
        "passed": p99_late <= max(p99_early * (1 + FLAT_SHARE), p99_early + P99_FLOOR_MS),
        "early_p99_ms": round(p99_early, 2),
        "late_p99_ms": round(p99_late, 2),
        "change": round(p99_late / p99_early - 1, 3) if p99_early else None,
    }
    fds_early = max(s["server"]["fds"] for s in early)
    fds_late = max(s["server"]["fds"] for s in late)
    checks["fds_flat"] = {"passed": fds_late - fds_early <= FD_SLACK, "early_max": fds_early, "late_max": fds_late}
    conn_early = max(s["database"]["connections"] for s in early)
    conn_late = max(s["database"]["connections"] for s in late)
    checks["connections_flat"] = {
        "passed": conn_late - conn_early <= CONNECTION_SLACK,
        "early_max": conn_early,
        "late_max": conn_late,
    }
    return {"passed": all(c["passed"] for c in checks.values()), "windows": how, "checks": checks}

"""What the tests of a PostgreSQL outage share: the store's template, the frontend's operations as a
steady load, and what an answer during an outage may be."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import orjson

from tests.conftest import OPERATIONS

DATABASE = "alphanode"
RECOVERY = 5.0  # seconds from PostgreSQL accepting connections to the API answering 200, at most
LEAKS = ("Traceback", "SELECT", "sqlalchemy", "asyncpg", 'File "')


@dataclass
class Template:
    folder: Path
    corpus: Path
    token: str
    slugs: list[str]
    references: list[str]
    ids: list[str]


def operations(template: Template, n: int) -> tuple[str, dict[str, Any]]:
    """The frontend's operations in turn, each with variables that find something."""
    choices: list[tuple[str, dict[str, Any]]] = [
        ("PostPage", {"slug": template.slugs[n % len(template.slugs)]}),
        ("Listing", {"first": 5}),
        ("Facets", {}),
        ("Search", {"q": "python", "first": 5}),
        ("FilteredListing", {"first": 5, "where": {"stackAny": ["python"]}}),
    ]
    return choices[n % len(choices)]


QUERIES = {path.stem: path.read_text(encoding="utf-8") for path in OPERATIONS.glob("*.graphql")}
FILES = {
    "PostPage": "post-page",
    "Listing": "listing",
    "Facets": "facets",
    "Search": "search",
    "FilteredListing": "filtered-listing",
}


def body_for(template: Template, n: int) -> dict[str, Any]:
    name, variables = operations(template, n)
    return {"query": QUERIES[FILES[name]], "operationName": name, "variables": variables}


def check_outage_answer(status: int, headers: Any, text: str) -> None:
    """A 200, or the documented 503: DATABASE_UNAVAILABLE with Retry-After; never a traceback or SQL."""
    assert status in (200, 503), (status, text)
    if status == 503:
        for leak in LEAKS:  # (a post may well name sqlalchemy among its tools: error bodies only)
            assert leak not in text, text
        assert headers.get("retry-after", "").isdigit(), dict(headers)
        body = orjson.loads(text)
        assert body["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE", body
    else:
        assert '"errors"' not in text, text


def open_files() -> int:
    """File descriptors this process has open (sockets included)."""
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Answer:
    sent: float
    seconds: float
    status: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)


async def steady_load(
    http: httpx2.AsyncClient, template: Template, stop: asyncio.Event, answers: list[Answer], n: int
) -> None:
    """One client: the frontend's operations one after another, an editor's token on every other."""
    headers = {"Authorization": f"Bearer {template.token}"} if n % 2 else {}
    i = n
    while not stop.is_set():
        sent = time.monotonic()
        response = await http.post("/graphql", json=body_for(template, i), headers=headers)
        answers.append(
            Answer(sent, time.monotonic() - sent, response.status_code, response.text, dict(response.headers))
        )
        i += 1
        await asyncio.sleep(0.01)


async def until(predicate: Any, seconds: float, interval: float = 0.05) -> float:
    """Wait for ``await predicate()`` to be true; the seconds it took. Fails past ``seconds``."""
    started = time.monotonic()
    while not await predicate():
        assert time.monotonic() - started < seconds, f"not within {seconds}s"
        await asyncio.sleep(interval)
    return time.monotonic() - started

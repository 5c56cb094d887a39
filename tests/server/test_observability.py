"""Response time made visible: Server-Timing, Prometheus metrics and one JSON log line per request.

``Server-Timing`` is on every GraphQL response, errors and 304s included, with
``parse``, ``validate``, ``execute``, ``db`` (``desc="N statements"``, N being what
the driver really ran: counted here with the driver's own trace, as
tests/graph/test_statement_count.py does) and ``cache``. ``/metrics`` speaks
Prometheus' text format. The logger ``alphanode.request`` writes one JSON line
per request; no log record, metric or header ever holds a token.
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from server.app import create_app
from server.collector import THRESHOLDS as GC_THRESHOLDS
from server.settings import Settings
from tests.factories import import_paths
from tests.server.caching import (
    POST_PAGE,
    SEED,
    SEED_SLUG,
    UPDATE_TITLE,
    bearer,
    cache_of,
    create_editor,
    statements_of,
    timing,
)

PAGE = {"query": POST_PAGE, "operationName": "PostPage", "variables": json.dumps({"slug": SEED_SLUG})}


@dataclass
class Recorder:
    """What the driver ran (SQLite's trace callback, asyncpg's query logger), connection set-up left out."""

    statements: list[str] = field(default_factory=list)

    def __call__(self, statement: str) -> None:
        if not statement.startswith("PRAGMA"):
            self.statements.append(statement)


@dataclass
class Served:
    client: TestClient
    recorder: Recorder
    token: str


@pytest.fixture
def served(database_url: str, corpus: Path) -> Iterator[Served]:
    import_paths(database_url, corpus)
    token = create_editor(database_url, "observed editor")
    app = create_app(Settings(database_url=database_url))
    recorder = Recorder()
    with TestClient(app) as client:
        client.portal.call(app.state.read_pool.trace, recorder)  # type: ignore[attr-defined]
        yield Served(client, recorder, token)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('observability') / 'store.db'}"
    import_paths(url, corpus)
    return url


@pytest.fixture
def client(store: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=store))) as client:
        yield client


def check_server_timing(response: httpx2.Response) -> dict[str, dict[str, str]]:
    metrics = timing(response)
    for name in ("parse", "validate", "execute", "db", "cache"):
        assert name in metrics, (name, response.status_code, response.headers["server-timing"])
    for name, params in metrics.items():
        if "dur" in params:
            assert float(params["dur"]) >= 0, (name, params)
    for name in ("parse", "validate", "execute", "db"):
        assert "dur" in metrics[name], (name, metrics)
    statements_of(response)
    assert metrics["cache"]["desc"] in ("hit", "miss", "bypass")
    return metrics


# -- Server-Timing -----------------------------------------------------------------------


def test_server_timing_counts_the_statements_the_driver_ran(served: Served) -> None:
    client, recorder = served.client, served.recorder
    miss = client.get("/graphql", params=PAGE)
    assert miss.status_code == 200
    assert cache_of(miss) == "miss"
    ran = len(recorder.statements)
    assert ran > 0
    assert statements_of(miss) == ran, recorder.statements
    assert float(timing(miss)["db"]["dur"]) > 0
    # A hit runs nothing, and says so.
    recorder.statements.clear()
    hit = client.get("/graphql", params=PAGE)
    assert cache_of(hit) == "hit"
    assert recorder.statements == []
    assert statements_of(hit) == 0
    # An editor's request (never cached) counts its token's look-up too.
    recorder.statements.clear()
    editor = client.get("/graphql", params=PAGE, headers=bearer(served.token))
    assert cache_of(editor) == "bypass"
    assert statements_of(editor) == len(recorder.statements) > 0
    # A listing on a POST.
    recorder.statements.clear()
    listing = client.post("/graphql", json={"query": "{ posts(first: 30) { totalCount edges { node { title } } } }"})
    assert statements_of(listing) == len(recorder.statements) > 0


def test_server_timing_is_on_every_response(client: TestClient, store: str) -> None:
    token = create_editor(store, "timed editor")
    etag = client.get("/graphql", params=PAGE).headers["etag"]
    responses = {
        "miss": client.get("/graphql", params={**PAGE, "variables": json.dumps({"slug": "no-such-post"})}),
        "hit": client.get("/graphql", params=PAGE),
        "304": client.get("/graphql", params=PAGE, headers={"If-None-Match": etag}),
        "editor": client.get("/graphql", params=PAGE, headers=bearer(token)),
        "post": client.post("/graphql", json={"query": "{ posts(first: 2) { totalCount } }"}),
        "field error": client.post("/graphql", json={"query": "{ posts(first: 500) { totalCount } }"}),
        "validation error": client.post("/graphql", json={"query": "{ posts { noSuchField } }"}),
        "syntax error": client.get("/graphql", params={"query": "{ posts("}),
        "not json": client.post("/graphql", content=b"{", headers={"content-type": "application/json"}),
        "unsupported media type": client.post("/graphql", content=b"{}", headers={"content-type": "text/plain"}),
        "mutation over GET": client.get("/graphql", params={"query": "mutation { __typename }"}),
        "unknown token": client.get("/graphql", params=PAGE, headers=bearer("anp_" + "x" * 43)),
        "too deep": client.post(
            "/graphql", json={"query": "{ a { b { c { d { e { f { g { h { i { j { k { l { m } } } } } } } } } } } } }"}
        ),
        "too large": client.post("/graphql", content=b"x" * 1_000_001, headers={"content-type": "application/json"}),
        "persisted query not found": client.get(
            "/graphql", params={"extensions": json.dumps({"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}})}
        ),
        "mutation": client.post(
            "/graphql",
            json={
                "query": UPDATE_TITLE,
                "variables": {"id": "UG9zdDpu", "title": "t", "expectedHash": "0" * 64},
            },
            headers=bearer(token),
        ),
    }
    statuses = {name: response.status_code for name, response in responses.items()}
    assert statuses["304"] == 304
    assert statuses["too large"] == 413
    assert statuses["unknown token"] == 401
    assert statuses["mutation over GET"] == 405
    assert statuses["unsupported media type"] == 415
    for name, response in responses.items():
        assert "server-timing" in response.headers, (name, response.status_code)
        metrics = check_server_timing(response)
        if name == "hit" or name == "304":
            assert metrics["cache"]["desc"] == "hit"
            assert statements_of(response) == 0


# -- /metrics ---------------------------------------------------------------------------------


def scrape(client: TestClient) -> dict[str, Any]:
    """The metric families of /metrics, by name."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def value(families: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    """The sum of a family's samples of that name whose labels include ``labels`` (0 when none)."""
    found = families.get(family)
    if found is None:
        return 0.0
    return sum(
        s.value for s in found.samples if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    )


def cache_counters(families: dict[str, Any]) -> dict[str, float]:
    """Look-ups of the response cache by result, from the counter that counts them."""
    counts = {"hit": 0.0, "miss": 0.0}
    for family in families.values():
        if family.type != "counter" or "cache" not in family.name or "purge" in family.name:
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                for result in counts:
                    if result in sample.labels.values():
                        counts[result] += sample.value
    return counts


def statements_family(families: dict[str, Any]) -> str:
    (name,) = [n for n, f in families.items() if f.type == "histogram" and "statement" in n]
    return str(name)


def test_metrics_move_with_requests(client: TestClient) -> None:
    duration = "alphanode_request_duration_seconds"
    assert client.get("/metrics").headers["cache-control"] == "no-store"
    before = scrape(client)
    assert before[duration].type == "histogram"
    counted = statements_family(before)

    miss = client.get("/graphql", params=PAGE)
    hit = client.get("/graphql", params=PAGE)
    assert (cache_of(miss), cache_of(hit)) == ("miss", "hit")
    after = scrape(client)

    # The duration histogram, by operation name: two more PostPage requests.
    moved = value(after, duration, duration + "_count", operation="PostPage") - value(
        before, duration, duration + "_count", operation="PostPage"
    )
    assert moved == 2
    buckets = [
        s for s in after[duration].samples if s.name == duration + "_bucket" and s.labels["operation"] == "PostPage"
    ]
    assert buckets and any(s.labels["le"] == "+Inf" for s in buckets)
    # Cache hits and misses, one each.
    gone = cache_counters(before)
    came = cache_counters(after)
    assert came["hit"] - gone["hit"] == 1
    assert came["miss"] - gone["miss"] == 1
    # The statements histogram: the miss's statements and the hit's none.
    assert (
        value(after, counted, counted + "_count", operation="PostPage")
        - value(before, counted, counted + "_count", operation="PostPage")
        == 2
    )
    assert value(after, counted, counted + "_sum", operation="PostPage") - value(
        before, counted, counted + "_sum", operation="PostPage"
    ) == statements_of(miss)


# -- the request log ------------------------------------------------------------------------------


def request_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "alphanode.request"]


def test_one_json_line_per_request(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="alphanode.request")
    etag = client.get("/graphql", params=PAGE).headers["etag"]
    caplog.clear()
    responses = [
        client.get("/graphql", params=PAGE),  # a hit
        client.get("/graphql", params=PAGE, headers={"If-None-Match": etag}),  # 304
        client.post("/graphql", json={"query": "query Listing { posts(first: 3) { totalCount } }"}),  # a miss
        client.post("/graphql", json={"query": "{ posts(first: 500) { totalCount } }"}),  # a field error
        client.post("/graphql", content=b"{", headers={"content-type": "application/json"}),  # 400
    ]
    lines = request_lines(caplog)
    assert len(lines) == len(responses), lines
    for line, response in zip(lines, responses, strict=True):
        assert {"operation", "status", "ms", "cache", "statements"} <= set(line), line
        assert line["status"] == response.status_code
        assert line["cache"] == cache_of(response)
        assert line["statements"] == statements_of(response)
        assert isinstance(line["ms"], int | float) and line["ms"] >= 0
    assert [line["operation"] for line in lines[:3]] == ["PostPage", "PostPage", "Listing"]
    assert [line["cache"] for line in lines[:3]] == ["hit", "hit", "miss"]


def test_no_token_ever_reaches_a_log_a_metric_or_a_header(
    client: TestClient, store: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    token = create_editor(store, "secret keeper")
    unknown = "anp_" + "Q" * 43
    malformed = "not-a-token-" + "Z" * 30
    responses = []
    for secret in (token, unknown, malformed):
        responses.append(client.get("/graphql", params=PAGE, headers=bearer(secret)))
        responses.append(
            client.post(
                "/graphql",
                json={"query": UPDATE_TITLE, "variables": {"id": "UG9zdDpu", "title": "t", "expectedHash": "0" * 64}},
                headers=bearer(secret),
            )
        )
        responses.append(
            client.post("/graphql", content=b"{", headers={**bearer(secret), "content-type": "application/json"})
        )
    assert responses[0].status_code == 200
    assert responses[0].json()["data"]["post"]["title"] == SEED.title
    assert responses[3].status_code == 401
    lines = request_lines(caplog)
    assert len(lines) == len(responses)
    metrics = client.get("/metrics").text
    for secret in (token, unknown, malformed):
        for record in caplog.records:
            assert secret not in record.getMessage(), record.name
            assert secret not in repr(record.args), record.name
            assert secret not in (record.exc_text or "")
        assert secret not in caplog.text
        assert secret not in metrics
        for response in responses:
            assert secret not in response.text
            assert all(secret not in value for value in response.headers.values())
    # The editor is named in the log by their token's name.
    assert lines[0]["viewer"] == "secret keeper"


def test_the_parts_of_server_timing_fit_in_its_total(client: TestClient) -> None:
    # Each request reports the time it spent: what a request did not do (parsing a document
    # parsed by an earlier request, say) takes it no time, and its parts add up to no more than its total.
    client.get("/graphql", params=PAGE)  # parsed, validated and cached here
    for _ in range(3):
        hit = client.get("/graphql", params=PAGE)
        assert cache_of(hit) == "hit"
        metrics = timing(hit)
        assert "total" in metrics, metrics
        parts = sum(float(metrics[name]["dur"]) for name in ("parse", "validate", "execute"))
        assert parts <= float(metrics["total"]["dur"]) + 0.05, hit.headers["server-timing"]


# -- the garbage collector ---------------------------------------------------------------------


def test_serving_freezes_start_up_and_collects_less_often(store: str) -> None:
    """A running app collects young objects past GC_THRESHOLDS; what start-up built is left out of full collections."""
    before = gc.get_threshold()
    try:
        with TestClient(create_app(Settings(database_url=store))) as client:
            assert gc.get_threshold() == GC_THRESHOLDS
            assert gc.get_freeze_count() > 0  # the schema, the fact index: frozen
            listing = client.post("/graphql", json={"query": "{ posts(first: 100) { edges { node { title } } } }"})
            assert listing.status_code == 200
            assert len(listing.json()["data"]["posts"]["edges"]) == 81
        assert gc.get_freeze_count() == 0  # stopping gives them back
    finally:
        gc.set_threshold(*before)


IMAGES_QUERY = "{ posts(first: 2) { edges { node { images { url } } } } }"


def test_a_fault_in_the_batched_executor_is_counted_and_answered_not_run_again(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    executor = client.app.state.services.executor  # type: ignore[attr-defined]

    async def broken(posts: list[Any], info: Any) -> list[Any]:
        raise RuntimeError("a bug in a batch form")

    # Only the batched executor uses this batch form: Strawberry's executor, run again, would succeed.
    executor._fields.clear()
    saved = executor.batch[("Post", "images")]
    executor.batch[("Post", "images")] = broken
    family = "alphanode_executor_errors"
    try:
        before = value(scrape(client), family, family + "_total")
        with caplog.at_level(logging.ERROR, logger="alphanode.http"):
            response = client.post(
                "/graphql", json={"query": "{ posts(first: 2) { edges { node { images { url } } } } }"}
            )
        after = value(scrape(client), family, family + "_total")
    finally:
        executor.batch[("Post", "images")] = saved
        executor._fields.clear()
    assert after == before + 1
    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"] == [
        {
            "message": "Internal server error.",
            "locations": [{"line": 1, "column": 3}],
            "path": ["posts"],
            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
        }
    ]
    assert "a bug in a batch form" not in response.text
    assert any(r.levelname == "ERROR" and "batched executor failed" in r.getMessage() for r in caplog.records)

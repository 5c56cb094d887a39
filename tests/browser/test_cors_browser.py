"""Browsers on other origins, in a real one: a page of a listed origin reads the API's answers (with a
token too), a page of any other origin does not, whatever it sends.

Each page comes from a small server of its own on a loopback port, at an origin that differs from
the API's (``http://localhost:<port>`` against ``http://127.0.0.1:<port>``): Chromium lets a page of
the loopback address space ask the loopback (one answered by Playwright, of no address space, may
not), and applies CORS to its requests to the API.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from documents import parse, slug_for
from tests.audit.live_server import live_server
from tests.conftest import SEED_DOCUMENT
from tests.parts.processes import free_port

SLUG = slug_for(parse(SEED_DOCUMENT.read_bytes()))
ASK = """async ([api, slug, token]) => {
    const headers = {"Content-Type": "application/json"};
    if (token) headers["Authorization"] = "Bearer " + token;
    const body = JSON.stringify({query: "query P($s: String!) { post(slug: $s) { title } }", variables: {s: slug}});
    try {
        const answer = await fetch(api + "/graphql", {method: "POST", headers, body});
        return {status: answer.status, body: await answer.json()};
    } catch (error) {
        return {failed: String(error)};
    }
}"""


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><p>a page of another origin"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[str, str]]:
    """Two origins serving a page each: the first is listed in the API's settings, the second not."""
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Page) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        allowed, other = (f"http://localhost:{server.server_address[1]}" for server in servers)
        yield allowed, other
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, origins: tuple[str, str]) -> Iterator[str]:
    with live_server(tmp_path_factory.mktemp("cors"), {"ALPHANODE_CORS_ORIGINS": origins[0]}) as url:
        yield url


def page_on(browser: Browser, origin: str) -> Page:
    page = browser.new_context().new_page()
    page.goto(f"{origin}/index.html")
    return page


def ask(page: Page, api: str, token: str | None = None) -> Any:
    return page.evaluate(ASK, [api, SLUG, token])


def test_a_page_of_a_listed_origin_reads_the_answers(browser: Browser, api: str, origins: tuple[str, str]) -> None:
    page = page_on(browser, origins[0])
    answer = ask(page, api)
    assert answer["status"] == 200 and answer["body"]["data"]["post"]["title"]
    # With a token: the preflight allows the Authorization header, and the refusal of a bad token is readable.
    refused = ask(page, api, token="not-a-token")
    assert refused["status"] == 401 and refused["body"]["errors"][0]["extensions"]["code"]
    page.context.close()


def test_a_page_of_another_origin_reads_nothing(browser: Browser, api: str, origins: tuple[str, str]) -> None:
    page = page_on(browser, origins[1])
    assert "failed" in ask(page, api)
    assert "failed" in ask(page, api, token="not-a-token")
    page.context.close()

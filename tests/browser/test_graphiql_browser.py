"""GraphiQL in a real browser: headless Chromium (Debian's ``/usr/bin/chromium``) through Playwright.

The page must work offline: every request it makes goes to the server it came from (requests
to any other origin are recorded and refused). It opens with the frontend's operations as
example tabs, runs one of them and a typed query, shows the results, and its documentation
explorer shows the schema's descriptions.

Playwright does not download a browser here: it drives the system's Chromium, which
``.ci/run`` installs (``apt-get install chromium``); ``ALPHANODE_CHROMIUM`` names another.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from graphql import build_schema
from playwright.sync_api import Browser, Locator, Page, Request, Response, Route, expect

from documents import parse
from tests.audit.live_server import live_server
from tests.browser.conftest import TIMEOUT_MS
from tests.conftest import OPERATIONS, ROOT, SEED_DOCUMENT

SEED = parse(SEED_DOCUMENT.read_bytes())
LOCAL_SCHEMES = ("data", "blob", "about")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with live_server(tmp_path_factory.mktemp("browser")) as url:
        yield url


class Tab:
    """A browser page on the server at ``origin``, recording what it asks for.

    Requests to another origin are recorded and refused before they leave the browser.
    """

    def __init__(self, browser: Browser, origin: str) -> None:
        self.origin = origin
        self.requests: list[str] = []
        self.foreign: list[str] = []
        self.failed_responses: list[str] = []
        self.page_errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.context.route("**/*", self._route)
        self.context.on("request", self._request)
        self.context.on("response", self._response)
        self.page: Page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def _foreign(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in LOCAL_SCHEMES or f"{parts.scheme}://{parts.netloc}" == self.origin:
            return False
        if url not in self.foreign:
            self.foreign.append(url)
        return True

    def _route(self, route: Route) -> None:
        if self._foreign(route.request.url):
            route.abort("blockedbyclient")
        else:
            route.continue_()

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)
        self._foreign(request.url)

    def _response(self, response: Response) -> None:
        if not response.ok:
            request = response.request
            self.failed_responses.append(f"{response.status} {request.method} {response.url} {request.post_data}")

    def open_graphiql(self) -> None:
        # Once the network is idle GraphiQL has its schema: the editors no longer change under the test.
        response = self.page.goto(f"{self.origin}/graphql", wait_until="networkidle")
        assert response is not None
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/html")
        expect(self.page.locator(".graphiql-query-editor .CodeMirror").first).to_be_visible()

    def result_pane(self) -> Locator:
        return self.page.locator(".graphiql-response .result-window")


@pytest.fixture
def tab(browser: Browser, base: str) -> Iterator[Tab]:
    tab = Tab(browser, base)
    try:
        yield tab
        # And nothing left for another origin, every response was a success, the page raised no error.
        assert tab.foreign == [], f"requests to other origins: {tab.foreign}"
        assert tab.failed_responses == [], tab.failed_responses
        assert tab.page_errors == [], tab.page_errors
    finally:
        tab.context.close()


def test_graphiql_runs_an_example_tab_and_a_typed_query_offline(tab: Tab) -> None:
    page = tab.page
    # Given GraphiQL, opened by a browser at /graphql.
    tab.open_graphiql()

    # Then it opens with one tab per operation file of the frontend, named by its first operation.
    first_operations = [
        re.search(r"^(?:query|mutation) (\w+)", path.read_text(encoding="utf-8"), re.MULTILINE)
        for path in sorted(OPERATIONS.glob("*.graphql"))
    ]
    expected = [match.group(1) for match in first_operations if match]
    tabs = page.locator(".graphiql-tab")
    expect(tabs).to_have_count(len(expected))
    assert [text.strip() for text in tabs.all_inner_texts()] == expected

    # When the Listing example runs with variables typed into the variables editor.
    page.get_by_role("tab", name="Listing", exact=True).click()
    expect(page.locator(".graphiql-query-editor")).to_contain_text("query Listing(")
    page.locator(".graphiql-editor-tool .CodeMirror").first.click()
    page.keyboard.insert_text('{"first": 1}')
    # GraphiQL applies an edit a moment later, and an Execute clicked before then sent nothing (one
    # run in five or so): it has applied this one once it keeps the variables in its storage.
    page.wait_for_function(
        "text => Object.entries(localStorage).some(([k, v]) => k.endsWith(':graphiql:variables') && v === text)",
        arg='{"first": 1}',
    )
    page.get_by_role("button", name=re.compile("Execute query")).click()

    # Then the result pane shows the stored post.
    expect(tab.result_pane()).to_contain_text('"totalCount": 1')
    expect(tab.result_pane()).to_contain_text(SEED.title)

    # When a query typed into a new tab runs with Ctrl-Enter.
    page.get_by_role("button", name="Add tab").click()
    page.locator(".graphiql-query-editor .CodeMirror").first.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(f'query Typed {{ post(reference: "{SEED.reference}") {{ meta {{ reference stack }} }} }}')
    # GraphiQL reads the operation's name a moment after each edit (and until then would send the
    # previous tab's): the tab takes the name once it has.
    expect(page.get_by_role("tab", selected=True).get_by_role("button", name="Typed", exact=True)).to_be_visible()
    page.keyboard.press("Control+Enter")

    # Then its result shows too.
    expect(tab.result_pane()).to_contain_text(f'"reference": "{SEED.reference}"')
    expect(tab.result_pane()).to_contain_text('"python services"')
    # Both ran through the page's fetcher, after the introspection query: POSTs to this server's /graphql.
    assert sum(urlsplit(url).path == "/graphql" for url in tab.requests) >= 4, tab.requests


def test_graphiqls_docs_show_the_schemas_descriptions(tab: Tab) -> None:
    page = tab.page
    schema = build_schema((ROOT / "schema.graphql").read_text(encoding="utf-8"))
    assert schema.query_type is not None
    posts = schema.query_type.fields["posts"]
    assert posts.description
    assert posts.args["first"].description

    def shown(markdown: str) -> str:
        """GraphiQL renders descriptions as Markdown: `code` shows without its backticks."""
        return markdown.replace("`", "")

    # Given GraphiQL with its documentation explorer open.
    tab.open_graphiql()
    page.get_by_role("button", name="Show Documentation Explorer").click()
    docs = page.locator(".graphiql-doc-explorer")

    # When the reader goes to the Query type: its fields show with their descriptions.
    docs.get_by_role("link", name="Query", exact=True).click()
    expect(docs.get_by_text(shown(posts.description)).first).to_be_visible()

    # And then to its posts field: the field's page shows its description and its arguments'.
    docs.locator(".graphiql-doc-explorer-field-name", has_text=re.compile(r"^posts$")).click()
    expect(docs.locator(".graphiql-doc-explorer-title")).to_have_text("posts")
    expect(docs.get_by_text(shown(posts.description)).first).to_be_visible()
    expect(docs.get_by_text(shown(posts.args["first"].description)).first).to_be_visible()

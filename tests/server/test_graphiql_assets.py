"""The GraphiQL page and the vendored files it loads: all local, all present, all as pinned."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import importlib.util
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient

from server.graphiql import SCRIPTS, STATIC_DIR, STYLESHEETS, graphiql_html, load_examples

ROOT = Path(__file__).resolve().parent.parent.parent
OPERATIONS = ROOT / "server" / "operations"
PREFIX = "/static/graphiql"
MANIFEST = json.loads((STATIC_DIR / "VERSIONS.json").read_text(encoding="utf-8"))
MANIFEST_FILES = {f["path"]: f for p in MANIFEST["packages"] for f in p["files"]}
EXAMPLES = load_examples(OPERATIONS)
PAGE = graphiql_html(examples=EXAMPLES)

URL_ATTR = re.compile(r'\b(?:src|href)="([^"]*)"')
CONFIG = re.compile(r"const CONFIG = (.*);\n")


def sri(algorithm: str, data: bytes) -> str:
    return f"{algorithm}-{base64.b64encode(hashlib.new(algorithm, data).digest()).decode('ascii')}"


def referenced(page: str) -> list[str]:
    return [url for url in URL_ATTR.findall(page) if not url.startswith("data:")]


def config(page: str) -> dict:
    found = CONFIG.findall(page)
    assert len(found) == 1
    return json.loads(found[0])


# -- (a) every file the page loads is vendored -----------------------------------------


def test_page_loads_exactly_the_vendored_browser_files() -> None:
    urls = referenced(PAGE)
    assert urls == [f"{PREFIX}/{name}" for name in (*STYLESHEETS, *SCRIPTS)]
    for url in urls:
        path = STATIC_DIR / url.removeprefix(PREFIX + "/")
        assert path.is_file(), url
        assert path.stat().st_size > 500, url


def test_page_integrity_attributes_match_the_files() -> None:
    for name in (*STYLESHEETS, *SCRIPTS):
        data = (STATIC_DIR / name).read_bytes()
        assert f'/{name}" integrity="{sri("sha384", data)}"' in PAGE


def test_static_prefix_and_endpoint_are_used() -> None:
    page = graphiql_html(endpoint="/api/graphql", static_prefix="/assets/gq/")
    assert referenced(page) == [f"/assets/gq/{name}" for name in (*STYLESHEETS, *SCRIPTS)]
    assert config(page)["endpoint"] == "/api/graphql"


@pytest.mark.parametrize("bad", ["https://unpkg.com/graphiql", "//cdn.example/x", "http:/x", 'a"b', "javascript:x"])
def test_non_local_urls_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="path on this server"):
        graphiql_html(static_prefix=bad)
    with pytest.raises(ValueError, match="path on this server"):
        graphiql_html(endpoint=bad)


def test_the_vendored_files_are_served() -> None:
    app = Starlette(routes=[Mount(PREFIX, StaticFiles(directory=STATIC_DIR))])
    with TestClient(app) as client:
        for url in referenced(PAGE):
            response = client.get(url)
            assert response.status_code == 200, url
            assert response.content == (STATIC_DIR / url.removeprefix(PREFIX + "/")).read_bytes()


# -- (b) nothing external ------------------------------------------------------------------


@pytest.mark.parametrize("page", [PAGE, graphiql_html()], ids=["examples", "no-examples"])
def test_page_names_nothing_external(page: str) -> None:
    lowered = page.lower()
    for needle in ("http://", "https://", "//cdn", "unpkg", "jsdelivr", "googleapis", "gstatic", "@import"):
        assert needle not in lowered, needle
    for url in referenced(page):
        assert url.startswith(PREFIX + "/"), url


# -- (c) the examples, embedded safely -----------------------------------------------------


def test_examples_become_tabs_in_order() -> None:
    cfg = config(PAGE)
    assert cfg["tabs"] == [{"query": text} for text in EXAMPLES.values()]
    assert cfg["endpoint"] == "/graphql"
    assert "defaultTabs" in PAGE
    assert "isHeadersEditorEnabled: true" in PAGE
    assert 'credentials: "same-origin"' in PAGE
    assert "explorerPlugin()" in PAGE
    assert "<noscript>" in PAGE


def test_an_example_cannot_break_out_of_the_script() -> None:
    evil = "# </script><script>alert(1)</script> <!-- ]]> & \u2028 \u2029 é\n{ __typename }\n"
    page = graphiql_html(examples={"evil": evil})
    assert page.count("</script>") == page.count("<script")
    assert "alert(1)" in page  # the text is there, escaped
    assert "<script>alert" not in page
    assert "<!--" not in page
    assert "\u2028" not in page
    assert "\u2029" not in page
    assert config(page)["tabs"] == [{"query": evil}]


def test_the_storage_namespace_follows_the_examples() -> None:
    assert config(PAGE)["storageNamespace"] == config(graphiql_html(examples=EXAMPLES))["storageNamespace"]
    assert config(PAGE)["storageNamespace"] != config(graphiql_html(examples={"a": "{ a }"}))["storageNamespace"]


# -- (d) the vendored files are the pinned ones --------------------------------------------


@pytest.mark.parametrize("name", sorted(MANIFEST_FILES))
def test_vendored_file_matches_the_manifest(name: str) -> None:
    entry = MANIFEST_FILES[name]
    data = (STATIC_DIR / name).read_bytes()
    assert len(data) == entry["size"]
    assert sri("sha512", data) == entry["sha512"]
    assert sri("sha384", data) == entry["sha384"]


def test_manifest_lists_every_vendored_file() -> None:
    on_disk = {p.name for p in STATIC_DIR.iterdir()} - {"VERSIONS.json", "README.md"}
    assert on_disk == set(MANIFEST_FILES)
    assert {f"{p['name']}@{p['version']}" for p in MANIFEST["packages"]} == {
        "react@18.2.0",
        "react-dom@18.2.0",
        "js-cookie@3.0.5",
        "graphiql@3.8.3",
        "@graphiql/plugin-explorer@1.0.2",
    }
    for package in MANIFEST["packages"]:
        assert package["license"] == "MIT"
        assert any(f["path"].startswith("LICENSE.") for f in package["files"])


def test_manifest_agrees_with_the_script_pins(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("vendor_graphiql", ROOT / "scripts" / "vendor_graphiql.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "vendor_graphiql", script)  # dataclasses look their module up there
    spec.loader.exec_module(script)
    pins = {p.name: p for p in script.PACKAGES}
    for package in MANIFEST["packages"]:
        pin = pins[package["name"]]
        assert package["version"] == pin.version
        assert package["integrity"] == pin.integrity
        for source, (name, sha384) in pin.files.items():
            assert MANIFEST_FILES[name]["source"] == source
            assert MANIFEST_FILES[name]["sha384"] == sha384


def test_the_package_data_ships_the_files() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["server"]
    server = ROOT / "server"
    for path in [*STATIC_DIR.iterdir(), *OPERATIONS.glob("*.graphql")]:
        relative = path.relative_to(server).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


# -- (e) the example operations ----------------------------------------------------------


def test_load_examples_reads_the_operations_sorted() -> None:
    assert list(EXAMPLES) == ["entity-page", "facets", "filtered-listing", "listing", "post-page", "search"]
    for name, text in EXAMPLES.items():
        assert text == (OPERATIONS / f"{name}.graphql").read_text(encoding="utf-8")
        assert "query " in text


def test_load_examples_ignores_other_files(tmp_path: Path) -> None:
    (tmp_path / "b.graphql").write_text("{ b }", encoding="utf-8")
    (tmp_path / "a.graphql").write_text("{ a }", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not an operation", encoding="utf-8")
    assert load_examples(tmp_path) == {"a": "{ a }", "b": "{ b }"}
    assert load_examples(tmp_path / "missing") == {}

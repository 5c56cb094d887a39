"""The GraphiQL page, served from files this package ships.

GraphiQL 3.8.3, React 18.2.0 and the explorer plugin 1.0.2 are vendored byte for byte in
``static/graphiql/`` (``scripts/vendor_graphiql.py`` writes them and ``VERSIONS.json``), so
the page loads nothing from outside the service: no CDN, no web fonts (GraphiQL's CSS
inlines its fonts as ``data:`` URLs).

The page posts every operation to the GraphQL endpoint with ``fetch`` (same origin, JSON
body, cookies same-origin), with the headers typed into GraphiQL's headers editor
(``{"Authorization": "Bearer …"}``); those headers are not saved in the browser's storage.
It opens with one tab per example operation the first time a browser sees this set of
examples; after that GraphiQL restores the browser's own tabs.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
from pathlib import Path
from typing import Any

STATIC_DIR: Path = Path(__file__).resolve().parent / "static" / "graphiql"

# The files the page loads, in order: the stylesheets in <head>, the scripts at the end of <body>.
# js.cookie.min.js is vendored too (Strawberry's page loads it for Django's CSRF cookie) but this
# service sets no CSRF cookie, so the page does not load it.
STYLESHEETS = ("graphiql.min.css", "plugin-explorer.css")
SCRIPTS = ("react.production.min.js", "react-dom.production.min.js", "graphiql.min.js", "plugin-explorer.umd.js")

_SCRIPT_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def script_json(value: Any) -> str:
    """``value`` as a JavaScript literal that is safe inside an HTML ``<script>`` element.

    JSON with ``<``, ``>``, ``&``, U+2028 and U+2029 written as ``\\u`` escapes: no ``</script>``,
    ``<!--`` or ``]]>`` can appear, and the line separators cannot end a string literal.
    """
    return json.dumps(value, ensure_ascii=False).translate(_SCRIPT_ESCAPES)


@functools.cache
def _integrity() -> dict[str, str]:
    """file name -> sha384 SRI value, from the manifest the vendoring script wrote."""
    manifest = json.loads((STATIC_DIR / "VERSIONS.json").read_text(encoding="utf-8"))
    return {f["path"]: f["sha384"] for p in manifest["packages"] for f in p["files"]}


def _check_local(what: str, url: str) -> None:
    if "//" in url or ":" in url.split("/", 1)[0] or any(c in url for c in "\"'<>\\ \t\r\n"):
        raise ValueError(f"{what} must be a path on this server, not {url!r}")


def load_examples(folder: Path) -> dict[str, str]:
    """The ``*.graphql`` files of ``folder``, sorted by file name: {file stem: operation text}."""
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.graphql"))}


_PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>alphanode GraphiQL</title>
    <link rel="icon" href="data:," />
{stylesheets}
    <style>
      body {{
        height: 100%;
        margin: 0;
        width: 100%;
        overflow: hidden;
      }}

      #graphiql {{
        height: 100vh;
        display: flex;
      }}

      .docExplorerHide {{
        display: none;
      }}

      .doc-explorer-contents {{
        overflow-y: hidden !important;
      }}

      .docExplorerWrap {{
        width: unset !important;
        min-width: unset !important;
      }}

      .graphiql-explorer-actions select {{
        margin-left: 4px;
      }}

      .alphanode-notice {{
        font-family: system-ui, sans-serif;
        margin: 2rem;
        max-width: 40rem;
      }}
    </style>
  </head>

  <body>
    <noscript>
      <div class="alphanode-notice">
        <p>GraphiQL needs JavaScript, which is turned off in this browser.</p>
        <p>The API itself works without it: POST a JSON body such as
          <code>{{"query": "{{ __typename }}", "variables": {{}}}}</code>
          to <code>{endpoint_html}</code> with <code>Content-Type: application/json</code>.</p>
      </div>
    </noscript>
    <div id="graphiql" class="graphiql-container">Loading GraphiQL…</div>
{scripts}
    <script>
      (function () {{
        "use strict";
        const CONFIG = {config};
        const root = document.getElementById("graphiql");

        if (
          typeof React === "undefined" ||
          typeof ReactDOM === "undefined" ||
          typeof GraphiQL === "undefined" ||
          typeof GraphiQLPluginExplorer === "undefined"
        ) {{
          root.className = "alphanode-notice";
          root.textContent =
            "GraphiQL's files did not load from " + CONFIG.staticPrefix + "/ (see the browser console).";
          return;
        }}

        // Same-origin POST with a JSON body; the headers editor's headers (Authorization: Bearer …)
        // are merged over the defaults. A response that is not JSON becomes a GraphQL error.
        async function fetcher(params, options) {{
          const headers = {{
            "Content-Type": "application/json",
            Accept: "application/graphql-response+json, application/json",
          }};
          Object.assign(headers, (options && options.headers) || {{}});
          const response = await fetch(CONFIG.endpoint, {{
            method: "POST",
            credentials: "same-origin",
            headers: headers,
            body: JSON.stringify(params),
          }});
          const text = await response.text();
          try {{
            return JSON.parse(text);
          }} catch (error) {{
            return {{
              errors: [
                {{
                  message: "HTTP " + response.status + ": the response is not JSON",
                  extensions: {{ body: text.slice(0, 2000) }},
                }},
              ],
            }};
          }}
        }}

        const explorer = GraphiQLPluginExplorer.explorerPlugin();
        const props = {{
          fetcher: fetcher,
          plugins: [explorer],
          defaultEditorToolsVisibility: true,
          isHeadersEditorEnabled: true,
          shouldPersistHeaders: false,
          inputValueDeprecation: true,
          // A namespace per set of examples: new examples open as fresh tabs.
          storage: GraphiQL.createLocalStorage({{ namespace: CONFIG.storageNamespace }}),
        }};
        if (CONFIG.tabs.length > 0) {{
          props.defaultTabs = CONFIG.tabs;
        }}

        ReactDOM.createRoot(root).render(React.createElement(GraphiQL, props));
      }})();
    </script>
  </body>
</html>
"""


def graphiql_html(
    endpoint: str = "/graphql",
    static_prefix: str = "/static/graphiql",
    examples: dict[str, str] | None = None,
) -> str:
    """The GraphiQL page: loads only ``static_prefix``'s files and posts to ``endpoint``.

    ``examples`` (name -> operation text) become GraphiQL's default tabs, in their order.
    """
    _check_local("endpoint", endpoint)
    _check_local("static_prefix", static_prefix)
    prefix = static_prefix.rstrip("/")
    integrity = _integrity()

    def attrs(name: str) -> str:
        return f'"{html.escape(f"{prefix}/{name}")}" integrity="{html.escape(integrity[name])}"'

    stylesheets = "\n".join(f'    <link rel="stylesheet" href={attrs(name)} />' for name in STYLESHEETS)
    scripts = "\n".join(f"    <script src={attrs(name)}></script>" for name in SCRIPTS)

    tabs = [{"query": text} for text in (examples or {}).values()]
    digest = hashlib.sha256(json.dumps([endpoint, tabs]).encode("utf-8")).hexdigest()[:16]
    config = {
        "endpoint": endpoint,
        "staticPrefix": prefix,
        "storageNamespace": f"alphanode-graphiql-{digest}",
        "tabs": tabs,
    }
    return _PAGE.format(
        stylesheets=stylesheets,
        scripts=scripts,
        endpoint_html=html.escape(endpoint),
        config=script_json(config),
    )

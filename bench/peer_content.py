"""What PostGraphile is asked, and the check that it answers what this API answers.

- **Queries.** :data:`QUERIES` are the post page and the listing (with and without
  ``totalCount``) asking PostGraphile for what ``server/operations/post-page.graphql``
  and ``listing.graphql`` ask this API, as far as the tables hold it.
- **Content check.** :func:`normalize_api` and :func:`normalize_postgraphile` map each
  system's ``data`` to one plain shape, and :func:`compare` says where two differ.
  Formats that differ by design are compared through what they encode or left out:
  this API's global ids (``base64("Post:<source id>")``) are compared as the source id
  PostGraphile reads from the column; cursors and ``endCursor`` are left out (each
  system pages with its own); PostGraphile's ``BigInt`` (a JSON string) is read as an
  integer and its ``Float`` as a float (Node.js writes the double 1.0 as ``1``); a
  similar post's ``reasons`` (a JSON list kept as text) is parsed; the body's blocks are
  built from ``post_block`` rows by the same rule as this API (consecutive list items
  form one list; an image block carries its image). Nothing else is left out.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from bench import handwritten
from bench.peer import ROOT, ContentMismatch, Data

# -- queries -------------------------------------------------------------------------

# Relations in position order: the link tables' names come with them (stack terms, tools, entities).
_CARD_RELATIONS = """
      stack: postStacksByPostIdList(orderBy: POSITION_ASC) { stackTermByTermId { name } }
      tools: postToolsByPostIdList(orderBy: POSITION_ASC) { toolByToolId { name } }
      entities: postEntitiesByPostIdList(orderBy: POSITION_ASC) { entityByEntityId { name type } }"""

POST_PAGE = (
    """query PostPage($slug: String!) {
  postBySlug(slug: $slug) {
    sourceId
    slug
    title
    intro
    blocks: postBlocksByPostIdList(orderBy: POSITION_ASC) { kind text image gap }
    images: postImagesByPostIdList(orderBy: POSITION_ASC) { url caption source position }
    topic
    summary
    outlineContext
    outlineProblem
    outlineStack
    outlineAction
    aiBrief
    codeLanguage
    difficulty
    readingTime
    viewCount
    status
    version
    lastReviewed
    reference
    metaHash
    aiGeneratedStyle
    hasImages
    imageHeavy
    needsHumanReview
    checklist: checklistItemsByPostIdList(orderBy: POSITION_ASC) { text }
    generator
    paragraphs
    scenario
    seed
    notes: postNotesByPostIdList(orderBy: POSITION_ASC) { text }
    quality
    freshness
    depth
    clarity"""
    + _CARD_RELATIONS
    + """
    similar: similarPostsByPostIdList(orderBy: RANK_ASC, first: 5) {
      score
      reasons
      postBySimilarId { slug title quality }
    }
  }
}
"""
)


def _listing(name: str, total: bool) -> str:
    return (
        f"""query {name}($first: Int!, $after: Cursor) {{
  allPosts(first: $first, after: $after, orderBy: ID_DESC, condition: {{ archivedAt: null }}) {{
"""
        + ("    totalCount\n" if total else "")
        + """    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        sourceId
        slug
        title
        topic
        readingTime
        viewCount
        difficulty
        quality
        freshness"""
        + _CARD_RELATIONS.replace("\n      ", "\n        ")
        + """
        images: postImagesByPostIdList(orderBy: POSITION_ASC) { url caption }
      }
    }
  }
}
"""
    )


LISTING = _listing("Listing", total=True)
LISTING_WITHOUT_TOTAL = _listing("ListingWithoutTotal", total=False)
QUERIES = {"PostPage": POST_PAGE, "Listing": LISTING, "ListingWithoutTotal": LISTING_WITHOUT_TOTAL}


def _without_total(listing: str) -> str:
    """This API's listing (listing.graphql) with its ``totalCount`` taken out, named ListingWithoutTotal."""
    lines = [line for line in listing.splitlines() if line.strip() != "totalCount" and not line.startswith("#")]
    return "\n".join(lines).replace("query Listing(", "query ListingWithoutTotal(", 1) + "\n"


API_LISTING_WITHOUT_TOTAL = _without_total((ROOT / "server" / "operations" / "listing.graphql").read_text("utf-8"))


def body(operation: str, variables: dict[str, Any]) -> dict[str, Any]:
    """A PostGraphile request body for one of :data:`QUERIES`."""
    return {"query": QUERIES[operation], "variables": variables, "operationName": operation}


# -- normalisers ---------------------------------------------------------------------


def source_id(global_id: str) -> str:
    """This API's global id of a post (``base64("Post:<source id>")``, unpadded) as the source id."""
    decoded = base64.urlsafe_b64decode(global_id + "=" * (-len(global_id) % 4)).decode()
    kind, _, key = decoded.partition(":")
    if kind != "Post":
        raise ContentMismatch(f"{global_id!r} is not a post's id")
    return key


def _big(value: Any) -> int:
    """PostgreSQL's bigint: a JSON string from PostGraphile (BigInt), a number from this API."""
    return int(value)


def _api_card(node: Data) -> Data:
    meta = node["meta"]
    return {
        "id": source_id(node["id"]),
        "slug": node["slug"],
        "title": node["title"],
        "meta": {**meta, "viewCount": _big(meta["viewCount"])},
        "scores": node["scores"],
        "entities": node["entities"],
        "images": node["images"],
    }


def _api_post(post: Data | None) -> Data | None:
    if post is None:
        return None
    meta = post["meta"]
    payload = meta["payload"]
    return {
        **post,
        "id": source_id(post["id"]),
        "meta": {
            **meta,
            "viewCount": _big(meta["viewCount"]),
            "payload": {**payload, "seed": _big(payload["seed"])},
        },
    }


def _api_listing(connection: Data) -> Data:
    shape: Data = {
        "hasNextPage": connection["pageInfo"]["hasNextPage"],
        "cards": [_api_card(edge["node"]) for edge in connection["edges"]],
    }
    if "totalCount" in connection:
        shape["totalCount"] = connection["totalCount"]
    return shape


def normalize_api(operation: str, data: Data) -> Any:
    """This API's ``data`` for the operation, in the compared shape."""
    if operation == "PostPage":
        return _api_post(data["post"])
    return _api_listing(data["posts"])


def _names(links: list[Data], relation: str) -> list[str]:
    return [link[relation]["name"] for link in links]


def _entities(links: list[Data]) -> list[Data]:
    return [{"name": link["entityByEntityId"]["name"], "type": link["entityByEntityId"]["type"]} for link in links]


def _pg_post(post: Data | None) -> Data | None:
    if post is None:
        return None
    images = [
        {"url": i["url"], "caption": i["caption"], "source": i["source"], "position": i["position"]}
        for i in post["images"]
    ]
    by_position = {image["position"]: image for image in images}
    return {
        "id": post["sourceId"],
        "slug": post["slug"],
        "title": post["title"],
        "intro": post["intro"],
        # The same rule as the API's (and the hand-written endpoint's) body, from the same rows.
        "body": handwritten._body(post["blocks"], by_position),
        "images": images,
        "meta": {
            "topic": post["topic"],
            "summary": post["summary"],
            "aiOutline": {
                "context": post["outlineContext"],
                "problem": post["outlineProblem"],
                "stack": post["outlineStack"],
                "recommendedAction": post["outlineAction"],
            },
            "aiBrief": post["aiBrief"],
            "stack": _names(post["stack"], "stackTermByTermId"),
            "tools": _names(post["tools"], "toolByToolId"),
            "codeLanguage": post["codeLanguage"],
            "difficulty": post["difficulty"],
            "readingTime": post["readingTime"],
            "viewCount": _big(post["viewCount"]),
            "revision": {"status": post["status"], "version": post["version"], "lastReviewed": post["lastReviewed"]},
            "reference": post["reference"],
            "hash": post["metaHash"],
            "flags": {
                "aiGeneratedStyle": post["aiGeneratedStyle"],
                "hasImages": post["hasImages"],
                "imageHeavy": post["imageHeavy"],
                "needsHumanReview": post["needsHumanReview"],
            },
            "checklist": [item["text"] for item in post["checklist"]],
            "payload": {
                "sourceId": post["sourceId"],
                "generator": post["generator"],
                "paragraphs": post["paragraphs"],
                "scenario": post["scenario"],
                "seed": _big(post["seed"]),
            },
            "notes": [note["text"] for note in post["notes"]],
        },
        "scores": {
            "quality": post["quality"],
            "freshness": post["freshness"],
            "depth": post["depth"],
            "clarity": post["clarity"],
        },
        "entities": _entities(post["entities"]),
        "similarPosts": [
            {
                "score": float(s["score"]),  # JSON from Node.js writes the double 1.0 as 1
                "reasons": orjson.loads(s["reasons"]),
                "post": {
                    "slug": s["postBySimilarId"]["slug"],
                    "title": s["postBySimilarId"]["title"],
                    "scores": {"quality": s["postBySimilarId"]["quality"]},
                },
            }
            for s in post["similar"]
        ],
    }


def _pg_card(node: Data) -> Data:
    return {
        "id": node["sourceId"],
        "slug": node["slug"],
        "title": node["title"],
        "meta": {
            "topic": node["topic"],
            "readingTime": node["readingTime"],
            "viewCount": _big(node["viewCount"]),
            "stack": _names(node["stack"], "stackTermByTermId"),
            "tools": _names(node["tools"], "toolByToolId"),
            "difficulty": node["difficulty"],
        },
        "scores": {"quality": node["quality"], "freshness": node["freshness"]},
        "entities": _entities(node["entities"]),
        "images": [{"url": i["url"], "caption": i["caption"]} for i in node["images"]],
    }


def normalize_postgraphile(operation: str, data: Data) -> Any:
    """PostGraphile's ``data`` for the operation, in the compared shape."""
    if operation == "PostPage":
        return _pg_post(data["postBySlug"])
    connection = data["allPosts"]
    shape: Data = {
        "hasNextPage": connection["pageInfo"]["hasNextPage"],
        "cards": [_pg_card(edge["node"]) for edge in connection["edges"]],
    }
    if "totalCount" in connection:
        shape["totalCount"] = connection["totalCount"]
    return shape


# -- comparison ----------------------------------------------------------------------


def differences(ours: Any, theirs: Any, path: str = "", limit: int = 5) -> list[str]:
    """Where two normalised answers differ (JSON paths with both values), at most ``limit`` of them."""
    found: list[str] = []

    def walk(a: Any, b: Any, at: str) -> None:
        if len(found) >= limit:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if key not in a or key not in b:
                    found.append(f"{at}.{key}: only in {'the API' if key in a else 'PostGraphile'}")
                else:
                    walk(a[key], b[key], f"{at}.{key}")
        elif isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                found.append(f"{at}: {len(a)} items in the API, {len(b)} in PostGraphile")
            for i, (x, y) in enumerate(zip(a, b, strict=False)):
                walk(x, y, f"{at}[{i}]")
        elif a != b or type(a) is not type(b):
            found.append(f"{at}: the API {a!r}, PostGraphile {b!r}")

    walk(ours, theirs, path or "data")
    return found


def compare(operation: str, api_data: Data, postgraphile_data: Data, request: str = "") -> None:
    """Raise :class:`ContentMismatch` when the two answers' content differs."""
    found = differences(normalize_api(operation, api_data), normalize_postgraphile(operation, postgraphile_data))
    if found:
        where = f" for {request}" if request else ""
        raise ContentMismatch(
            f"{operation}{where}: PostGraphile's answer differs from the API's:\n  " + "\n  ".join(found)
        )


def data_of(answer: bytes, system: str) -> Data:
    """The ``data`` of an HTTP answer that must have no errors."""
    parsed = orjson.loads(answer)
    if parsed.get("errors") or not isinstance(parsed.get("data"), dict):
        raise ContentMismatch(f"{system} answered with errors: {answer[:500]!r}")
    data: Data = parsed["data"]
    return data

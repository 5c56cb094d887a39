"""The side-by-side run with PostGraphile compares content it can trust: the normalisers and the check.

Canned answers of both systems for one post page and one listing page, as each
serves them: the check must pass on them as they are and stop on any change to
a compared value (a title, an order, a list item, a similar post, the total).
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from graphql import parse, print_ast, validate

from bench import handwritten, peer, peer_content
from graph.schema import schema


def _gid(source_id: str) -> str:
    return base64.urlsafe_b64encode(f"Post:{source_id}".encode()).decode().rstrip("=")


IMAGE_1 = {"url": "https://img/1.jpg", "caption": "a diagram", "source": "ours", "position": 1}
IMAGE_2 = {"url": "https://img/2.jpg", "caption": "a chart", "source": "theirs", "position": 2}


def api_post() -> dict[str, Any]:
    """PostPage's ``data`` from this API (post-page.graphql)."""
    return {
        "post": {
            "id": _gid("alphanode-42-000007"),
            "slug": "a-post",
            "title": "A post",
            "intro": "Why it matters.",
            "body": [
                {"__typename": "HeadingBlock", "text": "Steps"},
                {"__typename": "ListBlock", "items": ["one", "two"]},
                {"__typename": "ListBlock", "items": ["three"]},
                {"__typename": "ImageBlock", "image": IMAGE_1},
                {"__typename": "ParagraphBlock", "text": "Done."},
            ],
            "images": [IMAGE_1, IMAGE_2],
            "meta": {
                "topic": "deploys / kafka",
                "summary": "How to deploy.",
                "aiOutline": {"context": "c", "problem": "p", "stack": "s", "recommendedAction": "a"},
                "aiBrief": "brief",
                "stack": ["kafka", "java"],
                "tools": ["kcat"],
                "codeLanguage": "java",
                "difficulty": "advanced",
                "readingTime": 7,
                "viewCount": 12345678901,
                "revision": {"status": "published", "version": "1.2", "lastReviewed": "2026-03-04"},
                "reference": "ref-7",
                "hash": "abc",
                "flags": {"aiGeneratedStyle": False, "hasImages": True, "imageHeavy": False, "needsHumanReview": True},
                "checklist": ["check a", "check b"],
                "payload": {
                    "sourceId": "alphanode-42-000007",
                    "generator": "synth",
                    "paragraphs": 4,
                    "scenario": "s1",
                    "seed": 9007199254740993,
                },
                "notes": ["a note"],
            },
            "scores": {"quality": 80, "freshness": 60, "depth": 50, "clarity": 70},
            "entities": [{"name": "kafka", "type": "tool"}, {"name": "data", "type": "area"}],
            "similarPosts": [
                {
                    "score": 0.75,
                    "reasons": ["topic: x"],
                    "post": {"slug": "b", "title": "B", "scores": {"quality": 61}},
                },
                {"score": 0.5, "reasons": [], "post": {"slug": "c", "title": "C", "scores": {"quality": 40}}},
            ],
        }
    }


def _block(kind: str, text: str | None = None, image: int | None = None, gap: int = 0) -> dict[str, Any]:
    return {"kind": kind, "text": text, "image": image, "gap": gap}


def postgraphile_post() -> dict[str, Any]:
    """The same post's ``data`` from PostGraphile (``bench.peer_content.POST_PAGE``)."""
    return {
        "postBySlug": {
            "sourceId": "alphanode-42-000007",
            "slug": "a-post",
            "title": "A post",
            "intro": "Why it matters.",
            "blocks": [
                _block("heading", "Steps", gap=1),
                _block("item", "one", gap=1),
                _block("item", "two"),
                _block("item", "three", gap=1),  # a blank line before it: a second list
                _block("image", image=1),
                _block("paragraph", "Done.", gap=1),
            ],
            "images": [dict(IMAGE_1), dict(IMAGE_2)],
            "topic": "deploys / kafka",
            "summary": "How to deploy.",
            "outlineContext": "c",
            "outlineProblem": "p",
            "outlineStack": "s",
            "outlineAction": "a",
            "aiBrief": "brief",
            "codeLanguage": "java",
            "difficulty": "advanced",
            "readingTime": 7,
            "viewCount": "12345678901",
            "status": "published",
            "version": "1.2",
            "lastReviewed": "2026-03-04",
            "reference": "ref-7",
            "metaHash": "abc",
            "aiGeneratedStyle": False,
            "hasImages": True,
            "imageHeavy": False,
            "needsHumanReview": True,
            "checklist": [{"text": "check a"}, {"text": "check b"}],
            "generator": "synth",
            "paragraphs": 4,
            "scenario": "s1",
            "seed": "9007199254740993",
            "notes": [{"text": "a note"}],
            "quality": 80,
            "freshness": 60,
            "depth": 50,
            "clarity": 70,
            "stack": [{"stackTermByTermId": {"name": "kafka"}}, {"stackTermByTermId": {"name": "java"}}],
            "tools": [{"toolByToolId": {"name": "kcat"}}],
            "entities": [
                {"entityByEntityId": {"name": "kafka", "type": "tool"}},
                {"entityByEntityId": {"name": "data", "type": "area"}},
            ],
            "similar": [
                {
                    "score": 0.75,
                    "reasons": '["topic: x"]',
                    "postBySimilarId": {"slug": "b", "title": "B", "quality": 61},
                },
                {"score": 0.5, "reasons": "[]", "postBySimilarId": {"slug": "c", "title": "C", "quality": 40}},
            ],
        }
    }


def _api_card(n: int) -> dict[str, Any]:
    return {
        "cursor": f"api-cursor-{n}",
        "node": {
            "id": _gid(f"alphanode-42-{n:06d}"),
            "slug": f"post-{n}",
            "title": f"Post {n}",
            "meta": {
                "topic": "t",
                "readingTime": n,
                "viewCount": 1000 + n,
                "stack": ["python", "web"],
                "tools": ["pytest"],
                "difficulty": "beginner",
            },
            "scores": {"quality": 50 + n, "freshness": 40},
            "entities": [{"name": "pytest", "type": "tool"}],
            "images": [{"url": f"https://img/{n}.jpg", "caption": "c"}],
        },
    }


def _pg_card(n: int) -> dict[str, Any]:
    return {
        "cursor": f"pg-cursor-{n}",
        "node": {
            "sourceId": f"alphanode-42-{n:06d}",
            "slug": f"post-{n}",
            "title": f"Post {n}",
            "topic": "t",
            "readingTime": n,
            "viewCount": str(1000 + n),
            "difficulty": "beginner",
            "quality": 50 + n,
            "freshness": 40,
            "stack": [{"stackTermByTermId": {"name": "python"}}, {"stackTermByTermId": {"name": "web"}}],
            "tools": [{"toolByToolId": {"name": "pytest"}}],
            "entities": [{"entityByEntityId": {"name": "pytest", "type": "tool"}}],
            "images": [{"url": f"https://img/{n}.jpg", "caption": "c"}],
        },
    }


def api_listing(total: bool = True) -> dict[str, Any]:
    connection: dict[str, Any] = {"totalCount": 2000} if total else {}
    connection["pageInfo"] = {"hasNextPage": True, "endCursor": "api-cursor-8"}
    connection["edges"] = [_api_card(n) for n in (10, 9, 8)]
    return {"posts": connection}


def postgraphile_listing(total: bool = True) -> dict[str, Any]:
    connection: dict[str, Any] = {"totalCount": 2000} if total else {}
    connection["pageInfo"] = {"hasNextPage": True, "endCursor": "pg-cursor-8"}
    connection["edges"] = [_pg_card(n) for n in (10, 9, 8)]
    return {"allPosts": connection}


def test_the_same_post_page_passes() -> None:
    peer_content.compare("PostPage", api_post(), postgraphile_post())
    ours = peer_content.normalize_api("PostPage", api_post())
    assert ours == peer_content.normalize_postgraphile("PostPage", postgraphile_post())


def test_the_normalised_post_is_the_apis_own_shape_with_the_source_id() -> None:
    shape = peer_content.normalize_postgraphile("PostPage", postgraphile_post())
    expected = api_post()["post"]
    assert shape["id"] == "alphanode-42-000007"
    assert {k: v for k, v in shape.items() if k != "id"} == {k: v for k, v in expected.items() if k != "id"}


def test_a_missing_post_is_none_on_both_sides() -> None:
    peer_content.compare("PostPage", {"post": None}, {"postBySlug": None})
    with pytest.raises(peer.ContentMismatch):
        peer_content.compare("PostPage", {"post": None}, postgraphile_post())


def _change(data: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(data)
    holder = changed
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["postBySlug", "title"], "Another post"),
        (["postBySlug", "sourceId"], "alphanode-42-000008"),
        (["postBySlug", "viewCount"], "12345678902"),
        (["postBySlug", "seed"], "9007199254740992"),  # beyond 2**53: compared as integers, not floats
        (["postBySlug", "lastReviewed"], None),
        (["postBySlug", "blocks", 3, "gap"], 0),  # the two lists become one
        (["postBySlug", "blocks", 4, "image"], 2),
        (["postBySlug", "images", 1, "caption"], "another"),
        (["postBySlug", "stack"], [{"stackTermByTermId": {"name": "java"}}, {"stackTermByTermId": {"name": "kafka"}}]),
        (["postBySlug", "tools"], []),
        (["postBySlug", "checklist", 1, "text"], "check c"),
        (["postBySlug", "notes"], []),
        (["postBySlug", "entities", 1, "entityByEntityId", "type"], "tool"),
        (["postBySlug", "needsHumanReview"], False),
        (["postBySlug", "similar", 0, "reasons"], '["topic: y"]'),
        (["postBySlug", "similar", 1, "postBySimilarId", "quality"], 41),
        (["postBySlug", "similar", 0, "score"], 0.7500001),
    ],
)
def test_any_changed_post_value_stops_the_check(path: list[Any], value: Any) -> None:
    with pytest.raises(peer.ContentMismatch) as caught:
        peer_content.compare("PostPage", api_post(), _change(postgraphile_post(), path, value), "slug a-post")
    assert "slug a-post" in str(caught.value)


def test_a_whole_score_written_as_an_integer_is_the_same_float() -> None:
    ours, theirs = api_post(), postgraphile_post()
    ours["post"]["similarPosts"][0]["score"] = 1.0
    theirs["postBySlug"]["similar"][0]["score"] = 1  # how Node.js writes the double 1.0
    peer_content.compare("PostPage", ours, theirs)
    theirs["postBySlug"]["similar"][0]["score"] = 2
    with pytest.raises(peer.ContentMismatch, match="score"):
        peer_content.compare("PostPage", ours, theirs)


def test_similar_posts_in_another_order_stop_the_check() -> None:
    theirs = postgraphile_post()
    theirs["postBySlug"]["similar"].reverse()
    with pytest.raises(peer.ContentMismatch, match="similarPosts"):
        peer_content.compare("PostPage", api_post(), theirs)


def test_the_same_listing_passes_whatever_the_cursors() -> None:
    peer_content.compare("Listing", api_listing(), postgraphile_listing())
    peer_content.compare("ListingWithoutTotal", api_listing(total=False), postgraphile_listing(total=False))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["allPosts", "totalCount"], 1999),
        (["allPosts", "pageInfo", "hasNextPage"], False),
        (["allPosts", "edges", 0, "node", "slug"], "post-11"),
        (["allPosts", "edges", 2, "node", "viewCount"], "1009"),
        (["allPosts", "edges", 1, "node", "images"], []),
        (["allPosts", "edges", 1, "node", "freshness"], 41),
    ],
)
def test_any_changed_card_stops_the_check(path: list[Any], value: Any) -> None:
    with pytest.raises(peer.ContentMismatch):
        peer_content.compare("Listing", api_listing(), _change(postgraphile_listing(), path, value))


def test_cards_in_another_order_or_a_missing_total_stop_the_check() -> None:
    theirs = postgraphile_listing()
    theirs["allPosts"]["edges"].reverse()
    with pytest.raises(peer.ContentMismatch, match="cards"):
        peer_content.compare("Listing", api_listing(), theirs)
    with pytest.raises(peer.ContentMismatch, match="totalCount"):
        peer_content.compare("Listing", api_listing(), postgraphile_listing(total=False))


def test_differences_names_each_path_and_both_values() -> None:
    found = peer_content.differences({"a": [1, 2], "b": "x"}, {"a": [1, 3, 4], "c": "x"})
    assert "data.a: 2 items in the API, 3 in PostGraphile" in found
    assert "data.a[1]: the API 2, PostGraphile 3" in found
    assert "data.b: only in the API" in found
    assert "data.c: only in PostGraphile" in found
    assert peer_content.differences(1, 1.0) == ["data: the API 1, PostGraphile 1.0"]  # types are compared too


def test_source_id_reads_the_apis_global_id() -> None:
    assert peer_content.source_id(_gid("alphanode-42-000001")) == "alphanode-42-000001"
    entity = base64.urlsafe_b64encode(b"Entity:kafka").decode().rstrip("=")
    with pytest.raises(peer.ContentMismatch):
        peer_content.source_id(entity)


def test_the_peer_queries_parse_and_the_apis_listing_without_total_is_valid() -> None:
    for text in peer_content.QUERIES.values():
        parse(text)
    assert "totalCount" not in peer_content.LISTING_WITHOUT_TOTAL and "totalCount" in peer_content.LISTING
    document = parse(peer_content.API_LISTING_WITHOUT_TOTAL)
    assert validate(schema._schema, document) == []
    assert "totalCount" not in peer_content.API_LISTING_WITHOUT_TOTAL
    listing = parse((peer.ROOT / "server" / "operations" / "listing.graphql").read_text())
    # listing.graphql, that one field apart
    assert print_ast(document).replace("ListingWithoutTotal", "Listing") == print_ast(listing).replace(
        "    totalCount\n", ""
    )


def test_the_hand_written_endpoint_answers_the_listing_without_total() -> None:
    assert "ListingWithoutTotal" in handwritten.MORE_HANDLERS
    assert "ListingWithoutTotal" not in handwritten.HANDLERS  # the headline suite measures these only


def test_installing_is_skipped_when_the_locked_version_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = {"packages": {"node_modules/postgraphile": {"version": "4.14.1"}}}
    (tmp_path / "package-lock.json").write_text(json.dumps(lock))
    manifest = tmp_path / "node_modules" / "postgraphile" / "package.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"version": "4.14.1"}))
    monkeypatch.setattr(peer.shutil, "which", lambda name: None)  # npm would be needed to install
    assert peer.ensure_installed(tmp_path) == "4.14.1"
    manifest.write_text(json.dumps({"version": "4.13.0"}))
    with pytest.raises(peer.PeerUnavailable, match="npm"):
        peer.ensure_installed(tmp_path)


def test_the_committed_lock_pins_postgraphile_4() -> None:
    assert peer.locked_version().startswith("4.")
    package = json.loads((peer.FOLDER / "package.json").read_text())
    assert package["dependencies"]["postgraphile"] == peer.locked_version()

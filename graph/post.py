"""The ``Post`` type and the value types it is made of.

Types are built from rows with ``from_row``: scalars and nested value objects
(meta, scores, flags, outline, revision, payload) come from the post row itself
with no extra query; lists that live in other tables go through the request's
loaders, one statement per relation for a whole page of posts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
import strawberry

from store.similar import MAX_SIMILAR

from .auth import require_editor
from .context import Info
from .errors import BadUserInput
from .executor import BATCH_FORMS, batched
from .node import Node, encode_id


def _date(value: Any) -> dt.date | None:
    """A date column: SQLite hands back the ISO text it stores."""
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def _datetime(value: Any) -> dt.datetime | None:
    """A timestamp column: SQLite hands back the text it stores; timestamps are UTC."""
    if value is None or isinstance(value, dt.datetime):
        return value
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@strawberry.type(description="One version of a post: who wrote it, when and why.")
class PostRevision:
    number: int = strawberry.field(description="The version's number, from 1 for the first.")
    author: str = strawberry.field(
        description="Who wrote it: the token's name, `import` for the command-line importer, or the author a "
        "command-line rollback names."
    )
    created_at: dt.datetime = strawberry.field(description="When it was written (UTC).")
    reason: str = strawberry.field(description="Why: created, imported, updated, archived, rolled back to 3, ...")
    content_hash: str = strawberry.field(description="sha256 of this version's page text.")

    @classmethod
    def from_row(cls, row: Any) -> PostRevision:
        created = _datetime(row["created_at"])
        assert created is not None
        return cls(
            number=row["number"],
            author=row["author"],
            created_at=created,
            reason=row["reason"],
            content_hash=row["content_hash"],
        )


@strawberry.type(description="Editorial scores of a post, each from 0 to 100.")
class Scores:
    quality: int = strawberry.field(description="How good the post is overall, 0..100.")
    freshness: int = strawberry.field(description="How current the post's advice is, 0..100.")
    depth: int = strawberry.field(description="How thoroughly the post covers its topic, 0..100.")
    clarity: int = strawberry.field(description="How clearly the post is written, 0..100.")


@strawberry.type(description="The outline the content synthesizer wrote the post from.")
class AiOutline:
    context: str = strawberry.field(description="The situation the post is set in.")
    problem: str = strawberry.field(description="The problem the post addresses.")
    stack: str = strawberry.field(description="The main stack the post is about.")
    recommended_action: str = strawberry.field(description="What the post recommends doing.")


@strawberry.type(description="Where the post is in its editorial life.")
class Revision:
    status: str = strawberry.field(description="Revision status, such as `drafted` or `reviewed`.")
    version: str = strawberry.field(description="Version of the post's text, such as `1.7.2`.")
    last_reviewed: dt.date | None = strawberry.field(
        description="When an editor last reviewed the post; null if never."
    )


@strawberry.type(description="Boolean flags of a post.")
class Flags:
    ai_generated_style: bool = strawberry.field(description="Written in the style of generated text.")
    has_images: bool = strawberry.field(description="The post shows at least one image.")
    image_heavy: bool = strawberry.field(description="Images carry much of the post.")
    needs_human_review: bool = strawberry.field(description="An editor should review the post before indexing.")


@strawberry.type(description="Provenance: what produced the post and from which seed.")
class Payload:
    source_id: str = strawberry.field(description="The source id; the key the importer matches posts by.")
    generator: str = strawberry.field(description="The program that produced the document.")
    paragraphs: int = strawberry.field(description="Number of body paragraphs the generator wrote.")
    scenario: str = strawberry.field(description="The scenario the generator wrote for.")
    seed: int = strawberry.field(description="The generator's seed for this document.")


@strawberry.type(description="An image shown in a post.")
class Image:
    url: str = strawberry.field(description="Where the image is served from.")
    caption: str = strawberry.field(description="The caption shown under the image.")
    source: str = strawberry.field(description="Who provides the image, such as `unsplash`.")
    position: int = strawberry.field(description="1-based position of the image among the post's images.")

    @classmethod
    def from_row(cls, row: Any) -> Image:
        return cls(url=row["url"], caption=row["caption"], source=row["source"], position=row["position"])


@strawberry.type(description="A named thing a post is about: a stack, an area, a problem, a tool.")
class Entity:
    name: str = strawberry.field(description="The entity's name, such as `python services`.")
    type: str = strawberry.field(description="The entity's type, such as `stack`, `area` or `problem`.")


@strawberry.type(description="A section heading in a post's body.")
class HeadingBlock:
    text: str = strawberry.field(description="The heading's text.")


@strawberry.type(description="A paragraph of a post's body.")
class ParagraphBlock:
    text: str = strawberry.field(description="The paragraph's text.")


@strawberry.type(description="A bulleted list in a post's body, such as a checklist.")
class ListBlock:
    items: list[str] = strawberry.field(description="The list's items, in order.")


@strawberry.type(description="An image at its place in a post's body.")
class ImageBlock:
    image: Image = strawberry.field(description="The image shown here.")


Block = Annotated[
    HeadingBlock | ParagraphBlock | ListBlock | ImageBlock,
    strawberry.union("Block", description="One block of a post's body: a heading, paragraph, list or image."),
]


# The nested objects of a post are made when a query asks for them (most pages do not), from
# the post's row: plain functions of the object, which graph.executor calls for a whole level
# without Strawberry's argument handling.


def _ai_outline(self: PostMeta) -> AiOutline:
    row = self.row
    return AiOutline(
        context=row["outline_context"],
        problem=row["outline_problem"],
        stack=row["outline_stack"],
        recommended_action=row["outline_action"],
    )


def _revision(self: PostMeta) -> Revision:
    row = self.row
    return Revision(status=row["status"], version=row["version"], last_reviewed=_date(row["last_reviewed"]))


def _flags(self: PostMeta) -> Flags:
    row = self.row
    return Flags(
        ai_generated_style=bool(row["ai_generated_style"]),
        has_images=bool(row["has_images"]),
        image_heavy=bool(row["image_heavy"]),
        needs_human_review=bool(row["needs_human_review"]),
    )


def _payload(self: PostMeta) -> Payload:
    row = self.row
    return Payload(
        source_id=row["source_id"],
        generator=row["generator"],
        paragraphs=row["paragraphs"],
        scenario=row["scenario"],
        seed=row["seed"],
    )


def _meta(self: Post) -> PostMeta:
    return PostMeta.from_row(self.row)


def _scores(self: Post) -> Scores:
    row = self.row
    return Scores(quality=row["quality"], freshness=row["freshness"], depth=row["depth"], clarity=row["clarity"])


@strawberry.type(description="The post's meta block: what it is about, how it was made, and how it is doing.")
class PostMeta:
    pk: strawberry.Private[int]
    row: strawberry.Private[Any]  # the post's row: the nested objects are made from it when asked for
    topic: str = strawberry.field(description="The topic: the problem and the stack, as `problem / stack`.")
    summary: str = strawberry.field(description="A one-paragraph summary.")
    ai_outline: AiOutline = strawberry.field(resolver=_ai_outline, description="The outline the post was written from.")
    ai_brief: str = strawberry.field(description="How the post was written, in a sentence or two.")
    code_language: str = strawberry.field(description="The main programming language of the post's code.")
    difficulty: str = strawberry.field(description="Who the post is for: `beginner`, `intermediate`, ...")
    reading_time: int = strawberry.field(description="Estimated reading time in minutes.")
    view_count: int = strawberry.field(description="How many times the post was viewed.")
    revision: Revision = strawberry.field(resolver=_revision, description="Revision status, version and last review.")
    reference: str = strawberry.field(
        description="The post's unique editorial reference, such as `anp-ref-001632-5801`."
    )
    hash: str = strawberry.field(description="The hash the content synthesizer gave the document.")
    flags: Flags = strawberry.field(resolver=_flags, description="Boolean flags.")
    payload: Payload = strawberry.field(resolver=_payload, description="Provenance of the document.")

    @strawberry.field(description="Stack terms the post is about, in the post's order.")
    @batched
    async def stack(self, info: Info) -> list[str]:
        return (await meta_stack([self], info))[0]

    @strawberry.field(description="Tools the post uses, in the post's order.")
    @batched
    async def tools(self, info: Info) -> list[str]:
        return (await meta_tools([self], info))[0]

    @strawberry.field(description="The post's checklist of operational checks, in order.")
    @batched
    async def checklist(self, info: Info) -> list[str]:
        return (await meta_checklist([self], info))[0]

    @strawberry.field(description="Editorial notes about the post, in order.")
    @batched
    async def notes(self, info: Info) -> list[str]:
        return (await meta_notes([self], info))[0]

    @classmethod
    def from_row(cls, row: Any) -> PostMeta:
        return cls(
            pk=row["id"],
            row=row,
            topic=row["topic"],
            summary=row["summary"],
            ai_brief=row["ai_brief"],
            code_language=row["code_language"],
            difficulty=row["difficulty"],
            reading_time=row["reading_time"],
            view_count=row["view_count"],
            reference=row["reference"],
            hash=row["meta_hash"],
        )


@strawberry.type(description="A post that shares terms with another post, with why.")
class SimilarPost:
    post: Post = strawberry.field(description="The similar post.")
    score: float = strawberry.field(
        description="Share of the first post's weighted terms that this post has too, 0..1; "
        "rare terms weigh more than common ones."
    )
    reasons: list[str] = strawberry.field(
        description="What the two posts share, one entry per kind of term, such as `tools: pytest, ruff`."
    )


@strawberry.type(description="A technical-blog post.")
class Post(Node):
    pk: strawberry.Private[int]
    row: strawberry.Private[Any]  # the post's row: meta and scores are made from it when asked for
    slug: str = strawberry.field(description="The post's URL slug: its title and source id, lowercase and hyphenated.")
    title: str = strawberry.field(description="The post's title.")
    intro: str = strawberry.field(description="The introductory paragraph under the title.")
    meta: PostMeta = strawberry.field(resolver=_meta, description="The post's meta block.")
    scores: Scores = strawberry.field(resolver=_scores, description="Editorial scores.")
    content_hash: str = strawberry.field(
        description="sha256 of the post's page text; changes with every edit. Pass it to updatePost as "
        "`expectedHash` so that an edit never overwrites one made meanwhile."
    )
    archived_at: dt.datetime | None = strawberry.field(
        description="When an editor archived the post; null for every post readers can see."
    )

    @strawberry.field(
        description="Every version of the post, newest first. Editors only: null, with an UNAUTHENTICATED or "
        "FORBIDDEN error, for anyone else."
    )
    async def revisions(self, info: Info) -> list[PostRevision] | None:
        require_editor(info.context.viewer, "Post.revisions")
        rows = await info.context.loaders.revisions.load(self.pk)
        return [PostRevision.from_row(row) for row in rows]

    @strawberry.field(description="The post's body after the intro, block by block in page order.")
    @batched
    async def body(self, info: Info) -> list[Block]:
        return (await post_body([self], info))[0]

    @strawberry.field(description="The post's images in page order.")
    @batched
    async def images(self, info: Info) -> list[Image]:
        return (await post_images([self], info))[0]

    @strawberry.field(description="Entities the post is about, in the post's order.")
    @batched
    async def entities(self, info: Info) -> list[Entity]:
        return (await post_entities([self], info))[0]

    @strawberry.field(
        description="Posts most like this one, best first: ranked by shared topic, entities, stack and tools, "
        "rare shared terms counting more than common ones; ties go to the smaller source id."
    )
    @batched
    async def similar_posts(
        self,
        info: Info,
        first: Annotated[
            int, strawberry.argument(description=f"How many similar posts to return, 0..{MAX_SIMILAR}.")
        ] = 5,
    ) -> list[SimilarPost]:
        return (await post_similar_posts([self], info, first=first))[0]

    @classmethod
    def from_row(cls, row: Any) -> Post:
        return cls(
            pk=row["id"],
            row=row,
            id=encode_id("Post", row["source_id"]),
            slug=row["slug"],
            title=row["title"],
            intro=row["intro"],
            content_hash=row["content_hash"],
            archived_at=_datetime(row["archived_at"]),
        )


# Batch resolvers: each loads one relation for a whole level of objects. The
# fields above call them for a single object; graph.executor calls them once per level.


def _body(rows: list[Any], image_rows: list[Any]) -> list[HeadingBlock | ParagraphBlock | ListBlock | ImageBlock]:
    images = {row["position"]: Image.from_row(row) for row in image_rows}
    body: list[HeadingBlock | ParagraphBlock | ListBlock | ImageBlock] = []
    items: list[str] | None = None
    for row in rows:
        if row["kind"] == "item":
            # Consecutive items with no blank line between them form one list.
            if items is not None and row["gap"] == 0:
                items.append(row["text"])
                continue
            items = [row["text"]]
            body.append(ListBlock(items=items))
            continue
        items = None
        if row["kind"] == "heading":
            body.append(HeadingBlock(text=row["text"]))
        elif row["kind"] == "paragraph":
            body.append(ParagraphBlock(text=row["text"]))
        elif row["kind"] == "image":
            body.append(ImageBlock(image=images[row["image"]]))
    return body


@BATCH_FORMS.of(Post.body)
async def post_body(
    posts: list[Post], info: Info
) -> list[list[HeadingBlock | ParagraphBlock | ListBlock | ImageBlock]]:
    loaders = info.context.loaders
    keys = [p.pk for p in posts]
    # One after the other (they share the request's connection anyway): a coroutine made before a
    # failed await would be left never awaited.
    blocks = await loaders.blocks.load_all(keys)
    images = await loaders.images.load_all(keys)
    return [_body(rows, image_rows) for rows, image_rows in zip(blocks, images, strict=True)]


@BATCH_FORMS.of(Post.images)
async def post_images(posts: list[Post], info: Info) -> list[list[Image]]:
    rows = await info.context.loaders.images.load_all([p.pk for p in posts])
    return [[Image.from_row(row) for row in group] for group in rows]


@BATCH_FORMS.of(Post.entities)
async def post_entities(posts: list[Post], info: Info) -> list[list[Entity]]:
    rows = await info.context.loaders.entities.load_all([p.pk for p in posts])
    return [[Entity(name=row["name"], type=row["type"]) for row in group] for group in rows]


@BATCH_FORMS.of(Post.similar_posts)
async def post_similar_posts(posts: list[Post], info: Info, first: int = 5) -> list[list[SimilarPost]]:
    if not 0 <= first <= MAX_SIMILAR:
        raise BadUserInput(f"similarPosts(first:) must be between 0 and {MAX_SIMILAR}, not {first}", argument="first")
    if first == 0:
        return [[] for _ in posts]
    rows = await info.context.loaders.similar.load_all([p.pk for p in posts])
    for group in rows:
        info.context.db.note_posts(group[:first])  # what the response shows: its cache keys
    return [
        [
            SimilarPost(
                post=Post.from_row(row), score=row["similar_score"], reasons=orjson.loads(row["similar_reasons"])
            )
            for row in group[:first]
        ]
        for group in rows
    ]


def _meta_list(loader_name: str) -> Callable[[list[PostMeta], Info], Awaitable[list[list[str]]]]:
    async def resolve(metas: list[PostMeta], info: Info) -> list[list[str]]:
        loader = getattr(info.context.loaders, loader_name)
        return list(await loader.load_all([m.pk for m in metas]))

    return resolve


meta_stack = BATCH_FORMS.of(PostMeta.stack)(_meta_list("stack"))
meta_tools = BATCH_FORMS.of(PostMeta.tools)(_meta_list("tools"))
meta_checklist = BATCH_FORMS.of(PostMeta.checklist)(_meta_list("checklist"))
meta_notes = BATCH_FORMS.of(PostMeta.notes)(_meta_list("notes"))

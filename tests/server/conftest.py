"""Fixtures of the server's tests: private real parts (tests/parts) they start and stop themselves."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from documents import parse, slug_for
from tests.editing import create_token, import_folder, post_id, small_corpus
from tests.parts.postgres import PrivatePostgres, available, filled_template
from tests.parts.redis import persistent_redis_server, redis_server
from tests.server.caching import delete_redis_keys
from tests.server.outage_pg import DATABASE, Template

__all__ = ["persistent_redis_server", "redis_server"]


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own; every key under it is deleted afterwards."""
    prefix = f"alphanode-test-{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        delete_redis_keys(prefix)


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    """A cluster's data folder, stopped, holding the store: 21 posts and an editor's token."""
    reason = available()
    if reason is not None:
        pytest.skip(reason)
    corpus = small_corpus(tmp_path_factory.mktemp("outage-corpus"), 20)

    def fill(url: str) -> str:
        import_folder(url, corpus)
        return create_token(url, "editor")

    with filled_template(DATABASE, fill) as (folder, token):
        documents = [parse(path.read_bytes()) for path in sorted(corpus.glob("*.txt"))]
        yield Template(
            folder,
            corpus,
            token,
            [slug_for(d) for d in documents],
            [d.meta.reference for d in documents],
            [post_id(d) for d in documents],
        )


@pytest.fixture
def pg(template: Template) -> Iterator[PrivatePostgres]:
    with PrivatePostgres.create(template.folder) as cluster:
        yield cluster

"""The token limit is told by counting tokens with graphql-core's lexer, not by its error's words."""

from __future__ import annotations

from graph.limits import exceeds_tokens


def test_a_document_past_the_limit_exceeds_it_and_one_within_does_not() -> None:
    query = "{ posts(first: 1) { totalCount } }"  # 11 tokens
    assert not exceeds_tokens(query, 11)
    assert exceeds_tokens(query, 10)


def test_comments_are_not_tokens() -> None:
    assert not exceeds_tokens("# a comment\n# another\n{ a }", 3)


def test_a_syntax_error_before_the_limit_is_not_the_limit() -> None:
    assert not exceeds_tokens("{ a b c } }}} ~", 100)  # the lexer stops at ~ (an unknown character)
    assert exceeds_tokens("{ a b c d e ~", 4)  # past the limit before it gets there

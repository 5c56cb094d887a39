"""Content negotiation of the GraphQL-over-HTTP specification: what the client accepts and sends."""

from __future__ import annotations

from starlette.requests import Request

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


def media_type_parameters(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype`` (lower case) and its parameters (names lower case, values unquoted)."""
    media_type, *parameters = value.split(";")
    params: dict[str, str] = {}
    for parameter in parameters:
        name, _, param_value = parameter.partition("=")
        params[name.strip().lower()] = param_value.strip().strip('"')
    return media_type.strip().lower(), params


def utf8(params: dict[str, str]) -> bool:
    """No charset, or UTF-8: the only encoding this endpoint reads and writes."""
    return params.get("charset", "utf-8").lower() in ("utf-8", "utf8")


def response_media_type(request: Request) -> str | None:
    """The response's media type by the ``Accept`` header; None when it accepts neither (406).

    ``application/graphql-response+json`` when the client names it with a quality at least that of
    ``application/json``; ``application/json`` when the client sends no ``Accept``, only wildcards
    (``*/*``, ``application/*``) or prefers it. Media types are compared without regard to case, the
    most specific range decides a type's quality (``q=0`` refuses it) and a charset other than UTF-8
    matches nothing.
    """
    accept = request.headers.get("accept", "").strip()
    if not accept:
        return JSON
    # For each type we answer in: (specificity of the best matching range, its quality).
    best = {GRAPHQL_RESPONSE: (0, 0.0), JSON: (0, 0.0)}
    for media_range in accept.split(","):
        media_type, params = media_type_parameters(media_range)
        if not media_type or not utf8(params):
            continue
        try:
            quality = min(max(float(params.get("q", "1")), 0.0), 1.0)
        except ValueError:
            quality = 1.0
        for candidate, (specificity, _) in best.items():
            match = {candidate: 3, "application/*": 2, "*/*": 1}.get(media_type, 0)
            if match > specificity:
                best[candidate] = (match, quality)
    (graphql_match, graphql_q), (_, json_q) = best[GRAPHQL_RESPONSE], best[JSON]
    if graphql_match == 3 and graphql_q > 0 and graphql_q >= json_q:
        return GRAPHQL_RESPONSE
    if json_q > 0:
        return JSON
    return GRAPHQL_RESPONSE if graphql_q > 0 else None


def http_method(request: Request) -> str:
    """The request's method, HEAD answered as GET (the server leaves out the body)."""
    return "GET" if request.method == "HEAD" else request.method


def wants_graphiql(request: Request) -> bool:
    accept = request.headers.get("accept", "").lower()
    return http_method(request) == "GET" and "text/html" in accept and "query" not in request.query_params

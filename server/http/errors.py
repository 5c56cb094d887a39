"""The one error of the HTTP layer: a request answered with a status, a code and a message.

Whatever refuses a request before or around GraphQL execution (a body too large, a media type
not spoken, a persisted query unknown, a token refused, the store away, a time limit) raises
:class:`HttpError`; the endpoint turns it into a JSON error body with ``extensions.code``.
Errors inside an operation are GraphQL's own (``server.http.results``).
"""

from __future__ import annotations


class HttpError(Exception):
    """A request that cannot be executed at all; becomes a JSON error response."""

    def __init__(self, status: int, message: str, code: str = "BAD_REQUEST", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}

    def status_for(self, media_type: str) -> int:
        """The status to answer with in ``media_type`` (the same, unless a subclass says otherwise)."""
        return self.status

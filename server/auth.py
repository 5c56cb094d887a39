"""Bearer tokens on requests: no header is a public reader; a bad token is a 401, never a reader.

The token is looked up by its sha256 in the request's own read transaction (one
statement, for requests that carry a token). Tokens never reach logs or error
messages.
"""

from __future__ import annotations

from graph.auth import Viewer
from loaders import RequestDb
from loaders.sql import sql
from store.tokens import hash_token, well_formed

_LOOKUP = sql("SELECT name, role FROM api_token WHERE token_hash = ? AND revoked_at IS NULL")
CHALLENGE = 'Bearer realm="alphanode"'


class AuthError(Exception):
    """A request whose credentials are refused (401)."""

    def __init__(self, message: str, error: str) -> None:
        super().__init__(message)
        self.message = message
        self.header = f'{CHALLENGE}, error="{error}"'


async def authenticate(authorization: str | None, db: RequestDb) -> Viewer | None:
    """The viewer for an Authorization header value; None without one; AuthError for anything else."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("the Authorization header must be `Bearer <token>`", "invalid_request")
    if not well_formed(token):
        raise AuthError("the bearer token is malformed: tokens look like anp_ and 43 more characters", "invalid_token")
    rows = await db.fetch(_LOOKUP, (hash_token(token),))
    if not rows:
        raise AuthError("the bearer token is not valid: it is unknown or was revoked", "invalid_token")
    viewer = Viewer(name=rows[0][0], role=rows[0][1])
    db.include_archived = viewer.is_editor
    return viewer

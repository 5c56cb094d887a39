"""Who is asking: a public reader, or an editor or admin with a bearer token."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ApiError


@dataclass(frozen=True, slots=True)
class Viewer:
    """The holder of a valid token."""

    name: str
    role: str  # editor or admin

    @property
    def is_editor(self) -> bool:
        return self.role in ("editor", "admin")


class Unauthenticated(ApiError):
    """The request carries no token and the field needs one."""

    code = "UNAUTHENTICATED"


class Forbidden(ApiError):
    """The token's role does not allow this."""

    code = "FORBIDDEN"


def require_editor(viewer: Viewer | None, what: str) -> Viewer:
    """The viewer if an editor or admin; otherwise the error that says why not."""
    if viewer is None:
        raise Unauthenticated(f"{what} needs an editor token: send `Authorization: Bearer <token>`")
    if not viewer.is_editor:
        raise Forbidden(f"{what} needs the editor or admin role; this token has {viewer.role!r}")
    return viewer

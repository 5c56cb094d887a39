"""Errors that clients see.

    ApiError                 an error meant for the client, with ``extensions.code``
    ├── BadUserInput         an argument outside what the field accepts (BAD_USER_INPUT)
    └── NotFoundError        an id that names nothing (NOT_FOUND)

Anything else raised while executing is a bug or an outage: the client gets
"Internal server error." with code INTERNAL_SERVER_ERROR and the operator gets
the traceback in the log (see ``graph.schema``).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error whose message is safe and useful to show to the client."""

    code = "BAD_REQUEST"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = {"code": self.code, **extensions}


class BadUserInput(ApiError):
    """An argument value the field does not accept."""

    code = "BAD_USER_INPUT"


class NotFoundError(ApiError):
    """An id that names nothing."""

    code = "NOT_FOUND"

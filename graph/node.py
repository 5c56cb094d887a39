"""Global object identification: the ``Node`` interface and opaque global ids."""

from __future__ import annotations

import base64
import binascii

import strawberry

from .errors import BadUserInput


@strawberry.interface(description="An object with a globally unique, opaque ID that `Query.node` resolves.")
class Node:
    id: strawberry.ID = strawberry.field(
        description="Globally unique, opaque identifier; stable across stores and re-imports."
    )


def encode_id(type_name: str, key: str) -> strawberry.ID:
    """A global id: the type name and the object's stable key, base64-encoded."""
    return strawberry.ID(base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode().rstrip("="))


def decode_id(global_id: str, argument: str = "id") -> tuple[str, str]:
    """(type name, key) of a global id; a clear error for anything else."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, key = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeError, ValueError):
        type_name, key = "", ""
    if not type_name or not key:
        raise BadUserInput(f"{argument}: {global_id!r} is not an ID given out by this API", argument=argument)
    return type_name, key

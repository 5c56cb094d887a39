"""The alphanode page-text format: parse, render and synthesize documents. No database here."""

from ._errors import DocumentError, EncodingError, FormatError
from ._json import to_dict
from ._model import (
    Block,
    BulletList,
    Document,
    Entity,
    Figure,
    Flags,
    Heading,
    Image,
    Layout,
    Meta,
    Outline,
    Paragraph,
    Payload,
    Revision,
    Scores,
)
from ._parse import decode, parse
from ._render import render
from ._slug import slug_for, slugify
from ._validate import Problem, validate

__all__ = [
    "Block",
    "BulletList",
    "Document",
    "DocumentError",
    "EncodingError",
    "Entity",
    "Figure",
    "Flags",
    "FormatError",
    "Heading",
    "Image",
    "Layout",
    "Meta",
    "Outline",
    "Paragraph",
    "Payload",
    "Problem",
    "Revision",
    "Scores",
    "decode",
    "parse",
    "render",
    "slug_for",
    "slugify",
    "to_dict",
    "validate",
]

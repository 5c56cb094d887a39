"""What an import reads: files, folders of them, standard input, or text handed over directly."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from .prepare import read_file
from .write import Outcome

DOCUMENT_SUFFIX = ".txt"


@dataclass(frozen=True, slots=True)
class Source:
    """A document to read: a file (``path``), standard input, or text handed over directly."""

    name: str  # as the importer was given it: in messages to whoever runs the import
    read: Callable[[], bytes]
    path: str | None = None
    # In the revision history, which editors read: the file's name relative to what the importer
    # was given (the folder's name and the path within it, or the file's own name), never the
    # directories of the machine that imported it.
    label: str = ""

    @property
    def shown(self) -> str:
        return self.label or self.name


def file_source(path: Path | str, label: str | None = None) -> Source:
    name = str(path)
    return Source(name, partial(read_file, name), name, label or os.path.basename(name))


def text_source(name: str, text: str | bytes) -> Source:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return Source(name, lambda: data)


def collect_sources(paths: Sequence[str], stdin: Any = None) -> tuple[list[Source], list[Outcome]]:
    """Sources for the command line: files, folders (their ``*.txt``, recursively) and ``-``.

    Paths that do not exist come back as rejections rather than exceptions.
    """
    sources: list[Source] = []
    missing: list[Outcome] = []
    for raw in paths:
        if raw == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            data = stream.read()
            sources.append(text_source("<stdin>", data))
            continue
        path = Path(raw)
        if path.is_dir():
            within = path.resolve().name  # "posts" for "/srv/posts", ".", "posts/" and "../posts"
            sources += [
                file_source(p, f"{within}/{relative}" if within else relative) for p, relative in _documents_in(path)
            ]
        elif path.is_file():
            sources.append(file_source(path))
        else:
            missing.append(Outcome(raw, "", "rejected", error=f"{raw}: no such file or folder"))
    return sources, missing


def _documents_in(folder: Path) -> list[tuple[str, str]]:
    """The ``*.txt`` files in a folder and its subfolders, in path order, each with its path within
    the folder; hidden files and folders left out.

    Paths as text: a ``Path`` for each of 100,000 files took most of a second.
    """
    found: list[tuple[str, ...]] = []

    def walk(directory: str, parts: tuple[str, ...]) -> None:
        try:
            with os.scandir(directory) as entries:
                listed = list(entries)
        except OSError:
            return
        for entry in listed:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                walk(entry.path, (*parts, entry.name))
            elif entry.name.endswith(DOCUMENT_SUFFIX) and entry.is_file():
                found.append((*parts, entry.name))

    walk(str(folder), ())
    found.sort()
    # folder / name without a Path per file: "x" for folder ".", "/x" for "/".
    prefix = str(folder / "x")[:-1]
    return [(prefix + "/".join(parts), "/".join(parts)) for parts in found]


__all__ = ["DOCUMENT_SUFFIX", "Source", "collect_sources", "file_source", "text_source"]

"""The fact index in files, mapped by every worker of an instance: one copy in memory, not one each.

The workers of ``alphanode serve --workers N`` are separate processes. Each building the
fact index itself (``loaders.facts``) would hold it N times and read the whole store N
times at start-up. Instead the first worker that needs the index at a store version
builds it and writes its arrays here, one ``.npy`` file each (NumPy's format), and every
worker maps them read-only (``numpy.load(mmap_mode="r")``): the kernel keeps one copy of
their pages for all of them, and a worker that starts later maps what is there instead of
reading the store. A worker waits for another that is building (an exclusive ``flock`` on
``.lock``) rather than building too.

A folder holds one store's snapshots, one per published version (``v<version>``), written
under a temporary name and renamed into place whole, so a reader sees all of a snapshot or
none of it; the newest ``KEPT`` are kept. Mapped files stay valid in the workers that map
them after their snapshot is removed (the kernel frees the pages once the last mapping
goes). The folder belongs to one instance and one store: ``alphanode serve`` makes a new
one at each start (``ALPHANODE_INDEX_DIR`` to choose it), so a store made again with the
same versions never meets an older store's files.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import logging
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .fact_arrays import FLAGS, LINKS, NUMBERS, SCALARS, Facts
from .fact_titles import TITLE_ORDER_FILE, TitleOrder, Titles, save_array
from .posting_files import PostingFiles
from .postings import Text

log = logging.getLogger("alphanode.facts")

FORMAT = 1  # bumped when the files change shape: a folder of another format is not read
# The arrays of post fields (derived from loaders.fields): a folder made with others is not read
# either, so a field given an array there is never looked for in older files.
FIELDS = [list(SCALARS), list(FLAGS), list(NUMBERS), list(LINKS)]
KEPT = 2  # snapshots kept: the newest, and the one before it for workers still moving off it
LOCK_POLL = 0.02  # seconds between asks for the building lock
META = "meta.json"  # written last: a snapshot without it is not complete


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    path: Path


class FactFiles:
    """One store's fact index snapshots in ``folder``, shared by the workers of an instance."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        # The search's posting lists (SQLite), shared the same way: see loaders.posting_files.
        self.postings = PostingFiles(folder / "postings")

    def newest(self, at_most: int | None = None) -> Snapshot | None:
        """The newest complete snapshot (at store version ``at_most`` or before it, when given)."""
        best: Snapshot | None = None
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.folder):
                if not entry.name.startswith("v") or not entry.name[1:].isdigit():
                    continue
                version = int(entry.name[1:])
                newer = (at_most is None or version <= at_most) and (best is None or version > best.version)
                if newer and os.path.exists(os.path.join(entry.path, META)):
                    best = Snapshot(version, Path(entry.path))
        return best

    @contextlib.asynccontextmanager
    async def building(self) -> AsyncIterator[None]:
        """The instance's right to build and write a snapshot: one worker at a time."""
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            # Asked for without blocking, again until given: the event loop goes on meanwhile,
            # and a request cancelled while waiting leaves nothing behind. A worker killed
            # while holding it releases it with its descriptors.
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(LOCK_POLL)
            yield
        finally:
            os.close(fd)  # releases the lock

    def read(self, snapshot: Snapshot) -> Facts | None:
        """The snapshot's facts, mapped; None when it is gone or not of this format."""
        try:
            return _read(snapshot, self.postings)
        except (OSError, ValueError, KeyError) as exc:
            log.info("fact index snapshot %s not read: %s", snapshot.path.name, exc)
            return None

    def write(self, facts: Facts) -> Snapshot | None:
        """Publish ``facts`` (unless a snapshot of its version is there already), then remove
        all but the newest ``KEPT``; None when it could not be written (disk full, say)."""
        final = self.folder / f"v{facts.version}"
        if _of_this_format(final):
            return Snapshot(facts.version, final)
        started = time.perf_counter()
        partial = self.folder / f".partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            partial.mkdir()
            _write(facts, partial)
            if final.exists():  # of another format, or left incomplete by a worker killed while renaming
                shutil.rmtree(final, ignore_errors=True)
            os.rename(partial, final)
        except OSError as exc:
            log.warning("fact index snapshot at store version %d not written: %s", facts.version, exc)
            shutil.rmtree(partial, ignore_errors=True)
            return None
        log.info(
            "fact index snapshot at store version %d written in %.2fs", facts.version, time.perf_counter() - started
        )
        self._prune()
        return Snapshot(facts.version, final)

    def _prune(self) -> None:
        snapshots = sorted(
            (int(p.name[1:]), p) for p in self.folder.iterdir() if p.name[:1] == "v" and p.name[1:].isdigit()
        )
        for _, path in snapshots[:-KEPT]:
            shutil.rmtree(path, ignore_errors=True)
        for path in self.folder.glob(".partial-*"):
            pid = path.name.split("-")[1]
            if pid.isdigit() and not _alive(int(pid)):  # left by a worker killed while writing
                shutil.rmtree(path, ignore_errors=True)


def _of_this_format(folder: Path) -> bool:
    try:
        meta = orjson.loads((folder / META).read_bytes())
        return bool(meta["format"] == FORMAT and meta["fields"] == FIELDS)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _arrays(facts: Facts) -> dict[str, np.ndarray]:
    arrays = {"present": facts.present, "titles-blob": facts.titles.blob, "titles-offsets": facts.titles.offsets}
    for f in SCALARS:
        arrays[f"code-{f}"] = facts.codes[f]
    for f in FLAGS:
        arrays[f"flag-{f}"] = facts.flags[f]
    for f in (*NUMBERS, "last_reviewed"):
        arrays[f"number-{f}"] = facts.numbers[f]
    for facet in LINKS:
        arrays[f"link-{facet}-posts"], arrays[f"link-{facet}-terms"] = facts.links[facet]
    if facts.text is not None:
        arrays["text-sizes"] = facts.text.sizes
    return arrays


def _write(facts: Facts, folder: Path) -> None:
    if facts.titles.changed:
        facts = dataclasses.replace(facts, titles=facts.titles.compacted(facts.present))
    for name, array in _arrays(facts).items():
        if not save_array(folder / f"{name}.npy", np.ascontiguousarray(array)):
            raise OSError(f"{name}.npy not written")
    if facts.title_order_made is not None:
        save_array(folder / TITLE_ORDER_FILE, facts.title_order_made.order)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "fields": FIELDS,
        "version": facts.version,
        "values": facts.values,
        "terms": {facet: [[i, t] for i, t in facts.terms[facet].items()] for facet in LINKS},
        "text": None if facts.text is None else {"rows": facts.text.rows, "tokens": facts.text.tokens},
    }
    (folder / META).write_bytes(orjson.dumps(meta))


def _read(snapshot: Snapshot, postings: PostingFiles) -> Facts:
    folder = snapshot.path
    meta = orjson.loads((folder / META).read_bytes())
    if meta["format"] != FORMAT or meta.get("fields") != FIELDS or meta["version"] != snapshot.version:
        raise ValueError(f"format {meta['format']}, version {meta['version']}")

    def load(name: str) -> np.ndarray:
        array: np.ndarray = np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        return array

    terms: dict[str, dict[int, Any]] = {}
    for facet in LINKS:
        terms[facet] = {int(i): tuple(t) if facet == "entities" else t for i, t in meta["terms"][facet]}
    facts = Facts(
        snapshot.version,
        load("present"),
        {f: load(f"code-{f}") for f in SCALARS},
        meta["values"],
        {f: load(f"flag-{f}") for f in FLAGS},
        {f: load(f"number-{f}") for f in (*NUMBERS, "last_reviewed")},
        Titles(load("titles-blob"), load("titles-offsets")),
        {facet: (load(f"link-{facet}-posts"), load(f"link-{facet}-terms")) for facet in LINKS},
        {facet: {t: i for i, t in terms[facet].items()} for facet in LINKS},
        terms,
        source=folder,
    )
    if (folder / TITLE_ORDER_FILE).exists():
        facts.title_order_made = TitleOrder(load(TITLE_ORDER_FILE[: -len(".npy")]))
    if meta["text"] is not None:
        sizes = load("text-sizes")
        facts.text = Text.of(snapshot.version, sizes, meta["text"]["rows"], meta["text"]["tokens"], postings)
    return facts


__all__ = ["KEPT", "FactFiles", "Snapshot"]

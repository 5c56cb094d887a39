"""HTTP/1.1 on keep-alive sockets, written by hand so that the load generator costs little."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from bench import load, workload
from bench.soak.common import HOST, IDLE_REOPEN_S, TIMEOUT_S

# -- HTTP/1.1 on keep-alive sockets ------------------------------------------------------


@dataclass(slots=True)
class Answer:
    status: int
    headers: dict[bytes, bytes]  # names in lower case
    body: bytes


class Connection:
    """One keep-alive connection to the server: a request, then its answer, in turn."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0.0

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        self.used = time.monotonic()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def exchange(self, request: bytes) -> Answer:
        if self.writer is None or time.monotonic() - self.used > IDLE_REOPEN_S:
            self.close()
            await self.open()
        assert self.reader is not None and self.writer is not None
        try:
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head[:-4].split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if status == 304 or status == 204:
                body = b""
            elif b"content-length" in headers:
                body = await self.reader.readexactly(int(headers[b"content-length"]))
            elif headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                body = await self._chunked()
            else:
                body = await self.reader.read()
                headers[b"connection"] = b"close"
        except BaseException:
            self.close()  # a half-read answer leaves the connection unusable
            raise
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        self.used = time.monotonic()
        return Answer(status, headers, body)

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


class Pool:
    """Connections kept open; a request waits for a free one (that wait is part of its latency)."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.size = size
        self.free: asyncio.Queue[Connection] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            conn = Connection(self.port)
            await conn.open()
            self.free.put_nowait(conn)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        conn = await self.free.get()
        try:
            yield conn
        finally:
            self.free.put_nowait(conn)

    async def exchange(self, request: bytes) -> Answer:
        async with self.connection() as conn:
            return await asyncio.wait_for(conn.exchange(request), TIMEOUT_S)

    def close(self) -> None:
        while not self.free.empty():
            self.free.get_nowait().close()


def _get_prefix(operation: str) -> bytes:
    """The start of a GET request for an operation: path, query document and operation name."""
    document = workload.document("PostPage" if operation == "PostByReference" else operation)
    query = urllib.parse.urlencode({"query": document, "operationName": operation})
    return f"GET {load.PATH}?{query}&variables=".encode()


def _headers(port: int, extra: str = "") -> bytes:
    return (
        f" HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: application/graphql-response+json, application/json\r\n{extra}"
    ).encode()


def post_request(port: int, payload: dict[str, Any], token: str | None) -> bytes:
    body = orjson.dumps(payload)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST {load.PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/graphql-response+json, application/json\r\n{auth}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body

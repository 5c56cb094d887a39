"""Several workers on one port, each accepting connections on a listening socket of its own.

uvicorn's supervisor (``uvicorn.supervisors.Multiprocess``) starts the workers, replaces
one that dies, and handles SIGTERM, SIGHUP, SIGTTIN and SIGTTOU. By itself it hands every
worker the one listening socket it bound: the kernel wakes them all for a new connection,
the first to call ``accept`` takes it, and asyncio takes every connection waiting at once.
With wrk opening its 16 connections together and keeping them, one run put all 16 on one
worker, and two workers served what one does (bench/README.md, "Workers"). Here each worker
listens on a socket of its own bound to the same port with ``SO_REUSEPORT``, and the kernel
spreads new connections over them by a hash of their addresses, as nginx's ``reuseport``
and gunicorn's ``--reuse-port`` do.

The supervisor keeps a socket bound to the port with ``SO_REUSEPORT`` and never listens
on it: it holds the port while workers come and go, and receives no connection (the kernel
spreads connections over listening sockets only). Before it, a plain bind checks that the
port is free, so that a second server started on it fails to start, as it would without
``SO_REUSEPORT``. A connection the kernel gave a worker that dies before accepting it is
reset with that worker's listening socket, as are the requests it was answering.

What this takes from uvicorn beyond its documented API is here and only here, and
``tests/server/test_supervisor.py`` names each:

- ``uvicorn.supervisors.multiprocess.Process``, a worker: its ``target(sockets)`` runs in
  the worker's process and serves on ``sockets``; its ``config`` is the server's ``Config``;
- ``Multiprocess`` makes every worker (at start, on SIGHUP and SIGTTIN, and to replace one
  that died) by calling that module-level name, ``Process(config, sockets)``.
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.supervisors import multiprocess

log = logging.getLogger("uvicorn.error")

STARTUP_FAILURE = 3  # uvicorn's exit status for a server that could not start (uvicorn.config)


class OwnSocketWorker(multiprocess.Process):
    """uvicorn's worker, serving on a listening socket of its own instead of the supervisor's."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:
        for held in sockets or []:
            held.close()  # the supervisor's: bound, never listening
        own = bound_socket(self.config.host, self.config.port)
        own.listen(self.config.backlog)
        super().target([own])


def bound_socket(host: str, port: int, *, reuse_port: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def run(app: str, **options: Any) -> None:
    """Serve ``app`` (an import string) as ``uvicorn.run(app, workers=N, ...)`` does, with a
    listening socket for each worker."""
    config = uvicorn.Config(app, **options)  # (its logging configured as it is made)
    try:
        if config.port != 0:
            bound_socket(config.host, config.port, reuse_port=False).close()  # free, or fail now
        held = bound_socket(config.host, config.port)
    except OSError as exc:
        log.error("%s: %s:%d", exc, config.host, config.port)
        sys.exit(STARTUP_FAILURE)
    config.port = held.getsockname()[1]  # the port the system chose, for port 0
    held.set_inheritable(True)
    log.info(
        "serving on http://%s:%d with %d workers, each on a listening socket of its own (SO_REUSEPORT)",
        config.host,
        config.port,
        config.workers,
    )
    made_by = multiprocess.Process
    multiprocess.Process = OwnSocketWorker  # type: ignore[misc]
    try:
        multiprocess.Multiprocess(config, sockets=[held]).run()
    except KeyboardInterrupt:
        pass
    finally:
        multiprocess.Process = made_by  # type: ignore[misc]
        held.close()


__all__ = ["OwnSocketWorker", "bound_socket", "run"]

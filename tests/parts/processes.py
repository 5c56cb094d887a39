"""What every real part of the tests needs: a free port, and a process stopped by its id."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess

# The machine's shared servers: never a test's to take, stop or reconfigure.
SHARED_PORTS = frozenset({5432, 6379})


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (now), never a shared server's."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in SHARED_PORTS:
            return port


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds; waits for it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)

"""A private Varnish for a test: its own process, port and folder, with the repository's VCL.

``PrivateVarnish`` runs Debian's ``/usr/sbin/varnishd`` (``apt-get install varnish varnish-modules``,
which ``.ci/run`` does) in the foreground (``-F``) on a free port of 127.0.0.1, loading
``deploy/varnish/alphanode.vcl`` from the repository as shipped. What the shipped ``fleet.vcl``
holds for a site, the test writes for itself in the Varnish's folder, which comes first in
``vcl_path``: a backend per address it is given (with the shipped probe of /healthz), and the
shipped ``purgers`` ACL, copied from ``deploy/varnish/fleet.vcl``; ``extra`` VCL may follow (a test
holding a fetch, say). Everything else is in that folder too: the working folder (``-n``: shared
memory, the compiled VCL) and varnishd's output. 32 MB of memory storage, no management port
(``-T none``), no jail (``-j none``: as root the default jail would run the cache process as the
``vcache`` user, which cannot read a folder private to root). Stopped by process id: SIGTERM to
the manager process, which stops its child (the cache process), then SIGKILL to whichever is
left. The machine's own Varnish (port 6081, if its package started one) is never touched.

    with PrivateVarnish.create([("127.0.0.1", 8001), ("127.0.0.1", 8002)]) as varnish:
        varnish.url  # http://127.0.0.1:<port>
"""

from __future__ import annotations

import contextlib
import glob
import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx2

from tests.conftest import ROOT
from tests.parts.processes import FolderPart, free_port, stop_process

VARNISHD = Path("/usr/sbin/varnishd")
VMODS = "/usr/lib/*/varnish/vmods/libvmod_xkey.so"  # Debian's varnish-modules
VCL = ROOT / "deploy" / "varnish" / "alphanode.vcl"
SHIPPED_FLEET = ROOT / "deploy" / "varnish" / "fleet.vcl"
SHARED_PORT = 6081  # the port of the machine's own Varnish, if any: never ours
START_TIMEOUT = 30.0  # the VCL is compiled with cc at start: a few seconds on a busy machine
STOP_TIMEOUT = 10.0


def missing() -> str | None:
    """None when varnishd is installed; otherwise what to do about it (a reason to skip)."""
    if VARNISHD.exists():
        return None
    return (
        f"no Varnish at {VARNISHD}: install Debian's with `apt-get install -y --no-install-recommends varnish "
        "varnish-modules` (.ci/run does)"
    )


def shipped_acl() -> str:
    """The ``purgers`` ACL as ``deploy/varnish/fleet.vcl`` ships it."""
    found = re.search(r"^acl purgers \{.*?^\}", SHIPPED_FLEET.read_text(encoding="utf-8"), re.S | re.M)
    assert found, f"no `acl purgers` in {SHIPPED_FLEET}"
    return found.group(0)


# For tests only: which backend (api0, api1, …) answered, in each response.
NAME_THE_BACKEND = """
sub vcl_backend_response {
    set beresp.http.X-Backend = beresp.backend.name;
}
"""


def fleet_vcl(backends: Sequence[tuple[str, int]], extra: str = "") -> str:
    """A fleet.vcl for these instances (``api0``, ``api1``, …, named in an X-Backend header of each
    response), with the shipped ACL, and ``extra`` after them."""
    lines = []
    for n, (host, port) in enumerate(backends):
        lines.append(f'backend api{n} {{ .host = "{host}"; .port = "{port}"; .probe = healthz; }}')
    adds = "".join(f"    fleet.add_backend(api{n});\n" for n in range(len(backends)))
    return "\n".join(lines) + f"\nsub vcl_init {{\n{adds}}}\n{shipped_acl()}\n{NAME_THE_BACKEND}{extra}\n"


class PrivateVarnish(FolderPart):
    """One varnishd (a manager process and its cache process) in front of the given backends."""

    def __init__(self, folder: Path, port: int, backends: int) -> None:
        self.folder = folder
        self.port = port
        self.backends = backends  # how many
        self.host = "127.0.0.1"
        self.log = folder / "varnishd.log"
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, backends: Sequence[tuple[str, int]], *, port: int | None = None, extra: str = "") -> PrivateVarnish:
        """A Varnish in front of ``backends`` ((host, port) each), on ``port`` or a free one, started."""
        reason = missing()
        assert reason is None, reason
        if not glob.glob(VMODS):
            raise AssertionError(
                "Varnish has no xkey module: install Debian's `varnish-modules` (apt-get install varnish-modules)"
            )
        folder = Path(tempfile.mkdtemp(prefix="alphanode-varnish-"))
        varnish = cls(folder, port or free_port(), len(backends))
        assert varnish.port != SHARED_PORT
        try:
            (folder / "fleet.vcl").write_text(fleet_vcl(backends, extra), encoding="utf-8")
            varnish.start()
        except BaseException:
            varnish.remove()
            raise
        return varnish

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [
            str(VARNISHD),
            "-F",
            "-n",
            str(self.folder / "work"),
            "-a",
            f"{self.host}:{self.port}",
            "-T",
            "none",
            "-j",
            "none",
            "-s",
            "malloc,32m",
            "-p",
            f"vcl_path={self.folder}",
            "-f",
            str(VCL),
        ]

    def start(self) -> None:
        """Start varnishd; returns once it answers HTTP on its port (whatever its backends' health)."""
        assert self.process is None, "already running"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        with httpx2.Client(timeout=1.0) as client:
            while True:
                if self.process.poll() is not None:
                    self.process = None
                    raise AssertionError(f"varnishd exited at start on port {self.port}: {self.log_tail()}")
                with contextlib.suppress(httpx2.TransportError):
                    client.get(f"{self.url}/healthz")
                    return
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"varnishd did not answer on port {self.port} within {START_TIMEOUT}s")
                time.sleep(0.05)

    def wait_until_healthy(self, timeout: float = 10.0) -> None:
        """Wait until every backend has answered /healthz through Varnish: each is healthy to its director."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        with httpx2.Client(timeout=2.0) as client:
            while seen != {f"api{n}" for n in range(self.backends)}:
                response = client.get(f"{self.url}/healthz")
                if response.status_code == 200:
                    seen.add(response.headers["x-backend"])
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"only {sorted(seen)} healthy behind Varnish after {timeout}s: {self.log_tail()}"
                    )
                time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM to varnishd, which stops its cache process; SIGKILL to whichever lingers."""
        process, self.process = self.process, None
        if process is not None:
            stop_process(process, STOP_TIMEOUT)

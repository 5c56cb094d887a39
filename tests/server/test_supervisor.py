"""What ``server/supervisor.py`` takes from uvicorn beyond its documented API, named one by one:
a uvicorn release that changes any of them fails here, not in production."""

from __future__ import annotations

import inspect

from uvicorn.supervisors import Multiprocess, multiprocess

from server.supervisor import OwnSocketWorker


def test_uvicorn_makes_its_workers_by_the_module_level_name_process() -> None:
    # Multiprocess makes every worker by calling ``Process(self.config, self.sockets)`` of its
    # module: at start, on SIGHUP (restart_all), on SIGTTIN and to replace a worker that died.
    assert multiprocess.Multiprocess is Multiprocess
    assert list(inspect.signature(Multiprocess.__init__).parameters) == ["self", "config", "sockets"]
    for method in ("init_processes", "restart_all", "keep_subprocess_alive", "handle_ttin"):
        source = inspect.getsource(getattr(Multiprocess, method))
        assert "Process(self.config, self.sockets)" in source, method


def test_a_uvicorn_worker_serves_what_its_target_is_given() -> None:
    process = multiprocess.Process
    assert list(inspect.signature(process.__init__).parameters) == ["self", "config", "sockets"]
    assert list(inspect.signature(process.target).parameters) == ["self", "sockets"]
    assert "self.server.run(sockets)" in inspect.getsource(process.target)
    assert "self.config = config" in inspect.getsource(process.__init__)
    assert issubclass(OwnSocketWorker, process)

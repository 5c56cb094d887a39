"""Every third-party module the code and the tests import is a declared dependency (pyproject.toml).

A module that arrives only as another package's dependency works until that package drops
it: then a fresh install breaks. Imports are read from the source (``ast``), mapped to their
distributions by the installed metadata, and compared with ``[project] dependencies`` (for the
packages) and with those plus the ``dev`` extra (for the tests and benchmarks).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib

from tests.conftest import ROOT

PACKAGES = ("documents", "models", "store", "loaders", "graph", "server", "migrations")
DEVELOPMENT = ("tests", "bench", "scripts")
# Imported by the tests through pytest's plugin system rather than by name.
PLUGINS = {"anyio"}


def imported(folders: tuple[str, ...]) -> set[str]:
    """Top-level names of the modules imported (absolutely) anywhere in these folders."""
    names: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return {name for name in names if name not in sys.stdlib_module_names and name not in PACKAGES + DEVELOPMENT}


def normalized(requirement: str) -> str:
    """The distribution a requirement names, as PEP 503 normalizes it."""
    name = re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = {normalized(r) for r in project["dependencies"]}
    development = {normalized(r) for r in project["optional-dependencies"]["dev"]}
    return runtime, development


def distributions(modules: set[str]) -> dict[str, set[str]]:
    """module -> the normalized names of the distributions that provide it."""
    provided = importlib.metadata.packages_distributions()
    return {module: {normalized(d) for d in provided.get(module, [])} for module in modules}


def test_every_module_the_packages_import_is_a_declared_dependency() -> None:
    runtime, _ = declared()
    found = distributions(imported(PACKAGES))
    assert found, "no third-party import found: the scan is broken"
    missing = {module: dists for module, dists in found.items() if not dists & runtime}
    assert missing == {}, f"imported by the packages but not in [project] dependencies: {missing}"


def test_every_module_the_tests_and_benchmarks_import_is_declared_with_the_dev_extra() -> None:
    runtime, development = declared()
    found = distributions(imported(DEVELOPMENT) | PLUGINS)
    missing = {module: dists for module, dists in found.items() if not dists & (runtime | development)}
    assert missing == {}, f"imported by the tests or benchmarks but not declared: {missing}"

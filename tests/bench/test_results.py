"""The benchmark's result files: a later run of the same day never writes over an earlier one."""

from __future__ import annotations

from pathlib import Path

import orjson

from bench.run import RESULTS, Result, write_results


def test_a_later_run_of_the_same_day_gets_a_name_of_its_own(tmp_path: Path) -> None:
    recorded = orjson.loads((RESULTS / "2026-11-27-sqlite-fifth.json").read_bytes())
    result = Result(
        dialect="sqlite",
        started="2026-11-27T03:50:12+00:00",
        command=recorded["command"],
        config=recorded["config"],
        machine=recorded["machine"],
        import_timing=None,
    )
    first = write_results(result, quick=False, folder=tmp_path)
    second = write_results(result, quick=False, folder=tmp_path)
    third = write_results(result, quick=True, folder=tmp_path)
    assert [p.name for p in (first, second, third)] == [
        "2026-11-27-sqlite.md",
        "2026-11-27-sqlite-2.md",
        "2026-11-27-sqlite-quick.md",
    ]
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "2026-11-27-sqlite-2.json",
        "2026-11-27-sqlite-quick.json",
        "2026-11-27-sqlite.json",
    ]
    assert first.read_text(encoding="utf-8").startswith("# alphanode benchmark: SQLite, 2026-11-27")

"""The benchmark's result files: a later run of the same day never writes over an earlier one."""

from __future__ import annotations

from pathlib import Path

import orjson

from bench.load import Memory, WrkResult
from bench.run_results import RESULTS, Result, Row, write_results


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


def _row(operation: str, server: str, rps: float, round_: int) -> Row:
    wrk = WrkResult(int(rps * 10), 10.0, rps, 1.0, 2.0, 3.0, 1.5, 4.0, 0)
    return Row(operation, server, 20, wrk, "8", 90.0, Memory(100, 110, 80, 20), 0.5, round_)


def test_the_headline_ratio_is_that_of_the_rounds_mean_rates(tmp_path: Path) -> None:
    recorded = orjson.loads((RESULTS / "2026-11-27-sqlite-fifth.json").read_bytes())
    result = Result("sqlite", "2026-11-28T03:00:00+00:00", "x", recorded["config"], recorded["machine"], None)
    result.rows = [
        _row("Listing", "graphql", 300.0, 1),
        _row("Listing", "handwritten", 500.0, 1),
        _row("Listing", "handwritten", 400.0, 2),
        _row("Listing", "graphql", 300.0, 2),
        _row("PostPage", "graphql", 100.0, 1),
    ]
    assert result.ratio("Listing") == round(300 / 450, 3)
    assert result.round_ratios("Listing") == [0.6, 0.75]
    assert result.ratio("PostPage") is None  # no hand-written run to compare with
    text = write_results(result, quick=False, folder=tmp_path).read_text(encoding="utf-8")
    assert "- Listing: 0.67 (rounds: 0.60, 0.75)" in text
    assert "- PostPage: not measured" in text
    assert "| Listing | handwritten | 2 | 20 | 400.0 |" in text

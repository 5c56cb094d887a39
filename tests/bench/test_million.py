"""The million-post benchmark's pure parts: the corpus's parts, the growth table, the result's file name."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import million


def test_the_parts_of_a_size_number_on_from_one_another(tmp_path: Path) -> None:
    found = million.parts(tmp_path, 300, part=100)
    assert [(p.folder.name, p.start, p.count) for p in found] == [
        ("part-01", 1, 100),
        ("part-02", 101, 100),
        ("part-03", 201, 100),
    ]
    # The smaller size's parts are the larger's first ones: one corpus serves both.
    assert million.parts(tmp_path, 100, part=100) == found[:1]
    assert found[1].marker == "count=100 seed=42 start=101\n"


def test_a_size_that_is_not_a_whole_number_of_parts_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of the part"):
        million.parts(tmp_path, 150, part=100)


def test_a_part_is_generated_again_unless_its_marker_says_it_is_whole(tmp_path: Path) -> None:
    one, two = million.parts(tmp_path, 20, part=10)
    one.folder.mkdir()
    (one.folder / ".complete").write_text(one.marker)
    two.folder.mkdir()
    (two.folder / ".complete").write_text("count=10 seed=7 start=11\n")  # another seed's
    assert million.ensure_parts([one, two]) == 1
    assert len(list(two.folder.glob("*.txt"))) == 10
    assert not list(one.folder.glob("*.txt"))  # reused as it was
    assert million.ensure_parts([one, two]) == 0


def _store(wall: float, rate: float, uss: float, p99: float) -> dict[str, object]:
    run = {"p50_ms": p99 / 4, "p99_ms": p99}
    return {
        "import": {"finished": True, "wall_seconds": wall, "docs_per_second": rate, "store_bytes": 2 * 1024**3},
        "serve": {
            "first_request_s": wall / 100,
            "worker_after_one_of_each": {"uss_mib": uss, "pss_mib": uss + 1},
            "operations": {"Search": {"alone": run, "under_load": run}},
        },
    }


def test_the_table_gives_each_figure_at_every_size_and_its_growth() -> None:
    result = {
        "stores": {"sqlite": {"100": _store(10.0, 1000.0, 100.0, 8.0), "1000": _store(150.0, 666.7, 450.0, 20.0)}}
    }
    text = million.table(result)
    assert "| figure | 100 posts | 1,000 posts | growth |" in text
    assert "| import wall-clock (s) | 10.0 | 150.0 | 15.0× |" in text
    assert "| worker USS (MiB) | 100.0 | 450.0 | 4.5× |" in text
    assert "| Search alone p99 (ms) | 8.0 | 20.0 | 2.5× |" in text
    assert "| store size (GiB) | 2.0 | 2.0 | 1.0× |" in text


def test_an_unfinished_import_gives_its_rate_and_no_time() -> None:
    partial = {"import": {"finished": False, "posts_written": 500, "posts_per_second": 50.0, "store_bytes": 0}}
    figures = million.figures_of(partial)
    assert figures["import wall-clock (s)"] is None
    assert figures["import rate (docs/s)"] == 50.0
    assert figures["start-up to first request (s)"] is None
    assert million.growth(None, 3.0) is None
    assert million.growth(0.0, 3.0) is None


def test_two_runs_merge_into_one_result() -> None:
    earlier = {"started": "a", "command": "c1", "config": {}, "machine": {}, "stores": {"sqlite": {"100": {"x": 1}}}}
    later = {"started": "b", "command": "c2", "config": {}, "machine": {}, "stores": {"postgresql": {"100": {"y": 2}}}}
    both = million.merged(earlier, later)
    assert both["stores"] == {"sqlite": {"100": {"x": 1}}, "postgresql": {"100": {"y": 2}}}
    assert [r["command"] for r in both["runs"]] == ["c1", "c2"]


def test_a_later_run_of_the_day_never_takes_an_earlier_ones_name(tmp_path: Path) -> None:
    first = million.result_path(tmp_path, "2026-12-05")
    assert first.name == "2026-12-05-million.json"
    first.write_text("{}")
    assert million.result_path(tmp_path, "2026-12-05").name == "2026-12-05-million-2.json"

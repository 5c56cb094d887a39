"""The results of ``bench/run.py``: one measured run per row, the ratios, the Markdown report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import load, workload

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
ONE_AT_A_TIME = "graphql-1"


@dataclass(slots=True)
class Row:
    """One measured run: an operation on a server."""

    operation: str
    server: str  # "graphql" or "handwritten"
    bodies: int
    wrk: load.WrkResult
    statements: str
    cpu_percent: float
    memory: load.Memory
    load_average: float
    round: int = 1  # the headline pairs are measured in rounds, alternating which server goes first

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "server": self.server,
            "round": self.round,
            "bodies": self.bodies,
            **self.wrk.as_dict(),
            "statements_per_request": self.statements,
            "server_cpu_percent": self.cpu_percent,
            "rss_mib": self.memory.rss_mib,
            "rss_anon_mib": self.memory.anon_mib,
            "rss_file_mib": self.memory.file_mib,
            "peak_rss_mib": self.memory.hwm_mib,
            "load_average_1m": self.load_average,
        }


@dataclass(slots=True)
class Result:
    dialect: str
    started: str
    command: str
    config: dict[str, Any]
    machine: dict[str, Any]
    import_timing: dict[str, Any] | None
    statements: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    idle_memory: dict[str, dict[str, float]] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # operation -> why it was not measured
    mixed: dict[str, Any] = field(default_factory=dict)  # the 95/5 read/write load with the cache
    writes: dict[str, Any] = field(default_factory=dict)  # what an edit costs

    def rps(self, operation: str, server: str) -> float | None:
        """Requests per second of ``server`` on ``operation``: the mean over its rounds."""
        found = [r.wrk.rps for r in self.rows if r.operation == operation and r.server == server]
        return sum(found) / len(found) if found else None

    def ratio(self, operation: str, server: str = "graphql") -> float | None:
        measured, baseline = self.rps(operation, server), self.rps(operation, "handwritten")
        if not baseline or measured is None:
            return None
        return round(measured / baseline, 3)

    def round_ratios(self, operation: str) -> list[float]:
        """GraphQL req/s / hand-written req/s of each round in which both were measured."""
        by_round: dict[int, dict[str, float]] = {}
        for r in self.rows:
            if r.operation == operation and r.server in ("graphql", "handwritten"):
                by_round.setdefault(r.round, {})[r.server] = r.wrk.rps
        return [
            round(pair["graphql"] / pair["handwritten"], 3)
            for _, pair in sorted(by_round.items())
            if pair.get("handwritten") and "graphql" in pair
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "dialect": self.dialect,
            "started": self.started,
            "command": self.command,
            "config": self.config,
            "machine": self.machine,
            "import": self.import_timing,
            "statements_per_request": self.statements,
            "handwritten_check": self.checks,
            "idle_memory_mib": self.idle_memory,
            "runs": [r.as_dict() for r in self.rows],
            "not_measured": self.failures,
            "graphql_over_handwritten_rps": {op: self.ratio(op) for op in workload.HANDWRITTEN_OPERATIONS},
            "graphql_over_handwritten_rps_by_round": {
                op: self.round_ratios(op) for op in workload.HANDWRITTEN_OPERATIONS
            },
            "cached_over_handwritten_rps": {
                op: self.ratio(op, "graphql-cached") for op in workload.HANDWRITTEN_OPERATIONS
            },
            "mixed": self.mixed,
            "writes": self.writes,
        }


DIALECT_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _table_row(r: Row) -> str:
    return (
        f"| {r.operation} | {r.server} | {r.round} | {r.bodies} | {_n(r.wrk.rps, 1)} | {r.wrk.p50_ms:.2f} | "
        f"{r.wrk.p99_ms:.2f} | {r.statements} | {r.cpu_percent:.0f}% | {r.memory.rss_mib:.0f} | "
        f"{r.memory.anon_mib:.0f} | {r.memory.hwm_mib:.0f} | {r.wrk.errors} |"
    )


def markdown(result: Result) -> str:
    lines = _header(result) + _table(result) + _ratios(result) + _extras(result)
    return "\n".join(lines) + "\n"


def _header(result: Result) -> list[str]:
    """The run's command, machine, software, load and corpus."""
    lines: list[str] = []
    m, c = result.machine, result.config
    pkgs = m["packages"]
    lines += [f"# alphanode benchmark: {DIALECT_NAMES[result.dialect]}, {result.started[:10]}", ""]
    if c["quick"]:
        lines += [
            "> **Smoke run (`--quick`)**: a small corpus and short runs, to check that the suite works. "
            "Not a measurement.",
            "",
        ]
    database = f"SQLite {m['sqlite']}" + (f", PostgreSQL {m['postgresql']}" if m["postgresql"] else "")
    lines += [
        f"- **Command**: `{result.command}` (started {result.started})",
        f"- **Machine**: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gib']} GiB RAM, Linux {m['kernel']}; "
        f"load average {m['load_average_at_start']} at the start",
        f"- **Software**: Python {m['python']}, {database}; uvicorn {pkgs['uvicorn']} "
        f"({m['uvicorn_loop']} loop, {m['uvicorn_http']} HTTP), Starlette {pkgs['starlette']}, "
        f"Strawberry {pkgs['strawberry-graphql']}, graphql-core {pkgs['graphql-core']}, orjson {pkgs['orjson']}; "
        f"{m['wrk']}",
        f"- **Load**: wrk with {c['threads']} thread and {c['connections']} connections on loopback, "
        f"{_n(c['warmup'])} s warm-up then {_n(c['seconds'])} s measured per row; one uvicorn worker, "
        "no access log",
    ]
    corpus = f"{_n(c['count'])} synthesized posts (seed {c['seed']})"
    timing = result.import_timing
    if timing is None:
        lines.append(f"- **Corpus**: {corpus}; import not timed (`--skip-import`, the store was reused)")
    else:
        lines.append(
            f"- **Corpus**: {corpus}; import **{_n(timing['docs_per_second'])} docs/s** "
            f"({_n(timing['wall_seconds'], 1)} s wall-clock for {_n(timing['created'])} documents, "
            f"{_n(timing['receipt_seconds'], 1)} s by the importer's receipt)"
        )
    idle = result.idle_memory
    if idle:
        lines.append(
            "- **Idle server RSS** (after start-up and the health check): "
            + ", ".join(f"{name} {mem['rss_mib']:.0f} MiB ({mem['anon_mib']:.0f} anon)" for name, mem in idle.items())
        )
    return lines


def _table(result: Result) -> list[str]:
    """One row per measured run."""
    lines: list[str] = []
    lines += [
        "",
        "| operation | server | round | bodies | req/s | p50 ms | p99 ms | SQL statements/request | server CPU | "
        "RSS after MiB | of which anon MiB | peak RSS MiB | errors |",
        "| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for operation in workload.OPERATIONS:
        measured = [r for r in result.rows if r.operation == operation and r.server == "graphql"]
        lines += [_table_row(r) for r in measured]
        if operation in result.failures:
            lines.append(f"| {operation} | graphql | – | – | **failed** |{' – |' * 8}")
    lines += [_table_row(r) for r in result.rows if r.server != "graphql"]
    lines += [
        "",
        f"Servers: `graphql` the API, response cache off, {result.config['connections']} connections; "
        f"`{ONE_AT_A_TIME}` the same with one connection (one request at a time: each answer's own time); "
        "`handwritten` the baseline; `graphql-cached` the API with its response cache on.",
    ]
    alone = [r for r in result.rows if r.server == ONE_AT_A_TIME]
    if alone:
        lines += ["", "**p99 one request at a time** (target: under 50 ms on SQLite):", ""]
        lines += [f"- {r.operation}: {r.wrk.p99_ms:.2f} ms (p50 {r.wrk.p50_ms:.2f} ms)" for r in alone]
    if result.failures:
        lines += ["", "**Not measured**, the API answers an error:", ""]
        lines += [f"- {operation}: {reason}" for operation, reason in result.failures.items()]
    return lines


def _ratios(result: Result) -> list[str]:
    """The headline ratios, the cached ones."""
    lines: list[str] = []
    lines += [
        "",
        "**GraphQL req/s / hand-written req/s** (the headline; the API's response cache off; mean req/s of "
        "the rounds, each round's own ratio after it):",
        "",
    ]
    for operation in workload.HANDWRITTEN_OPERATIONS:
        ratio = result.ratio(operation)
        rounds = result.round_ratios(operation)
        each = f" (rounds: {', '.join(f'{r:.2f}' for r in rounds)})" if len(rounds) > 1 else ""
        lines.append(f"- {operation}: {'not measured' if ratio is None else f'{ratio:.2f}{each}'}")
    lines += ["", "**Cache hits / hand-written, uncached** (the API with its response cache on, warm):", ""]
    for operation in workload.HANDWRITTEN_OPERATIONS:
        ratio = result.ratio(operation, "graphql-cached")
        lines.append(f"- {operation}: {'not measured' if ratio is None else f'{ratio:.2f}'}")
    return lines


def _extras(result: Result) -> list[str]:
    """The mixed load, what an edit costs and the same-JSON checks."""
    lines: list[str] = []
    if result.mixed:
        m = result.mixed
        lines += [
            "",
            f"**Mixed load with the cache** ({m['reads_per_100']}% reads of 20 post pages and 5 listing pages, "
            f"{m['writes_per_100']}% setStatus writes on those posts): {m['rps']:,.1f} req/s, "
            f"p50 {m['p50_ms']:.2f} ms, p99 {m['p99_ms']:.2f} ms, cache hit ratio {m['hit_ratio']}, "
            f"{m['errors']} errors",
        ]
    if result.writes:
        lines += [
            "",
            "**What an edit costs** (in-process: the write transaction as a server's mutation runs it; the "
            "similar-posts refresh, which a server runs in the background, apart):",
            "",
        ]
        for name, w in result.writes.items():
            lines.append(
                f"- {name}: {w['mean_ms']} ms mean, {w['p50_ms']} ms median, {w['max_ms']} ms max over {w['edits']} "
                f"edits; {w['statements_mean']} SQL statements ({w['statements_min']}..{w['statements_max']}); "
                f"then the refresh {w.get('refresh_mean_ms', '–')} ms mean"
            )
    lines += ["", "**Same JSON**:", ""]
    for operation, check in result.checks.items():
        in_process, http = check["in_process"], check.get("http")
        text = (
            f"- {operation}: {in_process['identical_normalized']}/{in_process['compared']} bodies give the same "
            f"`data` after JSON normalization ({in_process['identical_bytes']} byte for byte, key order "
            f"included) and {in_process['same_statements']}/{in_process['compared']} the same SQL statements"
        )
        if http:
            text += f"; over HTTP {http['identical_bytes']}/{http['compared']} response bodies identical"
        lines.append(text)
    return lines


def write_results(result: Result, quick: bool, folder: Path = RESULTS) -> Path:
    """Write the run's Markdown and JSON; a later run of the same day and dialect gets ``-2``,
    ``-3``… rather than writing over an earlier one's results."""
    base = f"{result.started[:10]}-{result.dialect}{'-quick' if quick else ''}"
    return write_pair(folder, base, result.as_dict(), markdown(result))


def write_pair(folder: Path, base: str, data: dict[str, Any], text: str) -> Path:
    """``<base>.json`` and ``<base>.md`` in ``folder`` (``<base>-2``, ``-3``… when a run of that name
    is there already); the Markdown's path."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, n = base, 1
    while (folder / f"{stem}.md").exists() or (folder / f"{stem}.json").exists():
        n += 1
        stem = f"{base}-{n}"
    (folder / f"{stem}.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    path = folder / f"{stem}.md"
    path.write_text(text, encoding="utf-8")
    return path

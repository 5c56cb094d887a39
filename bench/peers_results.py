"""The results of ``bench/peers.py``: its runs, their ratios and the Markdown report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import load
from bench.run import SEED
from bench.run_results import write_pair

OPERATIONS = ("PostPage", "Listing", "ListingWithoutTotal")
SERVERS = ("graphql", "handwritten", "postgraphile")


@dataclass(slots=True)
class Run:
    operation: str
    server: str
    round: int
    bodies: int
    wrk: load.WrkResult
    cpu_percent: float
    memory: load.Memory
    load_average: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "server": self.server,
            "round": self.round,
            "bodies": self.bodies,
            **self.wrk.as_dict(),
            "server_cpu_percent": self.cpu_percent,
            "rss_mib": self.memory.rss_mib,
            "peak_rss_mib": self.memory.hwm_mib,
            "load_average_1m": self.load_average,
        }


@dataclass(slots=True)
class Result:
    started: str
    command: str
    config: dict[str, Any]
    machine: dict[str, Any]
    postgraphile: dict[str, Any]
    statements: dict[str, dict[str, str]] = field(default_factory=dict)  # operation -> server -> per request
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)

    def rps(self, operation: str, server: str) -> float | None:
        found = [r.wrk.rps for r in self.runs if r.operation == operation and r.server == server]
        return sum(found) / len(found) if found else None

    def ratio(self, operation: str, server: str, baseline: str = "postgraphile") -> float | None:
        measured, base = self.rps(operation, server), self.rps(operation, baseline)
        return round(measured / base, 3) if measured is not None and base else None

    def round_ratios(self, operation: str, server: str, baseline: str = "postgraphile") -> list[float]:
        by_round: dict[int, dict[str, float]] = {}
        for r in self.runs:
            if r.operation == operation:
                by_round.setdefault(r.round, {})[r.server] = r.wrk.rps
        return [
            round(pair[server] / pair[baseline], 3)
            for _, pair in sorted(by_round.items())
            if pair.get(baseline) and server in pair
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "command": self.command,
            "config": self.config,
            "machine": self.machine,
            "postgraphile": self.postgraphile,
            "statements_per_request": self.statements,
            "checks": self.checks,
            "runs": [r.as_dict() for r in self.runs],
            "graphql_over_postgraphile_rps": {op: self.ratio(op, "graphql") for op in OPERATIONS},
            "graphql_over_postgraphile_rps_by_round": {op: self.round_ratios(op, "graphql") for op in OPERATIONS},
            "handwritten_over_postgraphile_rps": {op: self.ratio(op, "handwritten") for op in OPERATIONS},
            "graphql_over_handwritten_rps": {op: self.ratio(op, "graphql", "handwritten") for op in OPERATIONS},
        }


# -- report --------------------------------------------------------------------------


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _rounds(values: list[float]) -> str:
    return f" (rounds: {', '.join(f'{v:.2f}' for v in values)})" if len(values) > 1 else ""


def markdown(result: Result) -> str:
    c, m = result.config, result.machine
    pkgs = m["packages"]
    lines = [f"# alphanode beside PostGraphile, {result.started[:10]}", ""]
    if c["quick"]:
        lines += ["> **Smoke run (`--quick`)**: a small store and short runs. Not a measurement.", ""]
    lines += [
        f"- **Command**: `{result.command}` (started {result.started})",
        f"- **Machine**: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gib']} GiB RAM, Linux {m['kernel']}; "
        f"load average {m['load_average_at_start']} at the start",
        f"- **Software**: PostgreSQL {m['postgresql']}; Python {m['python']}, uvicorn {pkgs['uvicorn']} "
        f"({m['uvicorn_loop']}, {m['uvicorn_http']}), Strawberry {pkgs['strawberry-graphql']}, asyncpg "
        f"{pkgs['asyncpg']}; PostGraphile {result.postgraphile['version']} on Node.js "
        f"{result.postgraphile['node']} (`{' '.join(result.postgraphile['options'])}`); {m['wrk']}",
        f"- **Store**: {c['count']:,} synthesized posts (seed {SEED}) in one PostgreSQL database",
        f"- **Load**: wrk, {c['threads']} thread, {c['connections']} connections, {c['warmup']:g} s warm-up then "
        f"{c['seconds']:g} s measured per row, {c['rounds']} rounds alternating the servers' order; one process "
        "per server",
        "",
        "| operation | server | round | bodies | req/s | p50 ms | p99 ms | SQL statements/request | server CPU | "
        "RSS MiB | errors |",
        "| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for operation in OPERATIONS:
        for r in sorted((r for r in result.runs if r.operation == operation), key=lambda r: (r.server, r.round)):
            lines.append(
                f"| {r.operation} | {r.server} | {r.round} | {r.bodies} | {r.wrk.rps:,.1f} | {r.wrk.p50_ms:.2f} | "
                f"{r.wrk.p99_ms:.2f} | {result.statements[operation][r.server]} | {r.cpu_percent:.0f}% | "
                f"{r.memory.rss_mib:.0f} | {r.wrk.errors} |"
            )
    lines += [
        "",
        "Servers: `graphql` this API (response cache off), `handwritten` the same SQL without GraphQL, "
        "`postgraphile` PostGraphile v4. Statements: in process for this API and the hand-written endpoint "
        "(`BEGIN` and `ROLLBACK` included), from PostGraphile's own statement log for PostGraphile.",
        "",
        "**This API's req/s / PostGraphile's** (the headline; mean req/s of the rounds, each round's own ratio "
        "after it):",
        "",
    ]
    for operation in OPERATIONS:
        ratio = result.ratio(operation, "graphql")
        text = (
            "not measured" if ratio is None else f"**{ratio:.2f}**{_rounds(result.round_ratios(operation, 'graphql'))}"
        )
        lines.append(f"- {operation}: {text}")
    lines += ["", "**Hand-written / PostGraphile** and **this API / hand-written**:", ""]
    for operation in OPERATIONS:
        hand, api = result.ratio(operation, "handwritten"), result.ratio(operation, "graphql", "handwritten")
        lines.append(f"- {operation}: {_ratio(hand)} and {_ratio(api)}")
    lines += ["", "**Checks** (before anything was timed):", ""]
    for operation in OPERATIONS:
        check = result.checks.get(operation)
        if check:
            lines.append(
                f"- {operation}: {check['compared']} PostGraphile answers with the API's content "
                "(normalised, `bench.peer_content.compare`); "
                f"{check['handwritten_identical_bytes']} hand-written answers "
                "byte for byte the API's"
            )
    tx = result.checks.get("postgraphile_transactions")
    if tx:
        lines.append(
            f"- PostgreSQL counted {tx['transactions']} transactions in the database over {tx['requests']} "
            "PostGraphile requests (`pg_stat_database`)"
        )
    return "\n".join(lines) + "\n"


def write_results(result: Result, folder: Path) -> Path:
    base = f"{result.started[:10]}-peers{'-quick' if result.config['quick'] else ''}"
    return write_pair(folder, base, result.as_dict(), markdown(result))

"""The result files: the JSON, the plot and the summary printed at the end."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from bench.soak.common import PEAK_CONNECTIONS, _say

# -- output --------------------------------------------------------------------------------


def result_stem(folder: Path, date: str, dialect: str) -> Path:
    """``<date>-soak-<dialect>``, or ``-2``, ``-3``… after it: never an earlier run's name."""
    base = f"{date}-soak-{dialect}"
    stem, n = base, 1
    while (folder / f"{stem}.json").exists() or (folder / f"{stem}.png").exists():
        n += 1
        stem = f"{base}-{n}"
    return folder / stem


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = [s for s in result["samples"] if s["requests"] > 0]
    everything = result["samples"]
    minutes = [s["t_s"] / 60 for s in samples]
    figure, (latency, memory, rate, resources) = plt.subplots(4, 1, figsize=(10, 13), sharex=True)
    connections_label = (
        "PostgreSQL connections to the database"
        if result["dialect"] == "postgresql"
        else "server descriptors on the store's files"
    )
    title = (
        f"alphanode soak, {result['dialect']}: {result['config']['posts']:,} posts, "
        f"{result['target_rps']:.0f} req/s for {result['config']['seconds'] / 60:.1f} min "
        f"({'passed' if result['verdict']['passed'] else 'FAILED'})"
    )
    if result.get("fill"):
        fill = result["fill"]
        title += (
            f"\nafter a fill of {fill['seconds']:.0f} s (at saturation; response cache "
            f"{fill['response_cache_mib']['after']} MiB, USS {fill['uss_mib']['after']} MiB)"
        )
    figure.suptitle(title)
    latency.plot(minutes, [s["all"]["p50_ms"] for s in samples], marker="o", label="p50, all")
    latency.plot(minutes, [s["all"]["p99_ms"] for s in samples], marker="o", label="p99, all")
    latency.plot(minutes, [s["reads"]["p99_ms"] for s in samples], linestyle="--", label="p99, reads")
    latency.plot(minutes, [s["writes"]["p99_ms"] for s in samples], linestyle=":", label="p99, writes")
    latency.set_title("Latency per interval (from the scheduled start)")
    latency.set_ylabel("milliseconds")
    latency.set_yscale("log")
    latency.grid(True, which="both", alpha=0.3)
    latency.legend(loc="upper left", fontsize="small")

    mem_minutes = [s["t_s"] / 60 for s in everything]
    memory.plot(mem_minutes, [s["server"]["uss_mib"] for s in everything], marker="o", label="server USS")
    memory.plot(mem_minutes, [s["server"]["pss_mib"] for s in everything], marker="o", label="server PSS")
    memory.plot(mem_minutes, [s["server"]["rss_mib"] for s in everything], linestyle="--", label="server RSS")
    if result["dialect"] == "postgresql":
        memory.plot(
            mem_minutes, [s["database"]["uss_mib"] for s in everything], linestyle=":", label="PostgreSQL backends USS"
        )
    memory.set_title("Memory of the server (uvicorn and its children)")
    memory.set_ylabel("MiB")
    memory.set_ylim(bottom=0)
    memory.grid(True, alpha=0.3)
    memory.legend(loc="lower right", fontsize="small")

    rate.plot(minutes, [s["rps"] for s in samples], marker="o", label="answered")
    rate.axhline(result["target_rps"], color="grey", linestyle="--", label="target rate")
    rate.bar(minutes, [s["errors"] / s["interval_s"] for s in samples], width=0.02 * max(minutes[-1], 1),
             color="tab:red", label="errors")  # fmt: skip
    rate.set_title("Requests per second (errors in red)")
    rate.set_ylabel("requests/s")
    rate.set_ylim(bottom=0)
    rate.grid(True, alpha=0.3)
    rate.legend(loc="lower right", fontsize="small")

    resources.plot(mem_minutes, [s["server"]["fds"] for s in everything], marker="o", label="server file descriptors")
    resources.plot(mem_minutes, [s["database"]["connections"] for s in everything], marker="o", label=connections_label)
    resources.set_title("Descriptors and database connections")
    resources.set_ylabel("count")
    resources.set_xlabel("minutes since the soak started")
    resources.set_ylim(bottom=0)
    resources.grid(True, alpha=0.3)
    resources.legend(loc="lower right", fontsize="small")
    figure.tight_layout(rect=(0, 0, 1, 0.98))
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _fmt(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _print_sample(s: dict[str, Any]) -> None:
    _say(
        f"  {s['t_s'] / 60:6.2f} min {s['requests']:>7} req {s['rps']:>7.1f}/s  "
        f"p50 {_fmt(s['all']['p50_ms'], 2):>7} p99 {_fmt(s['all']['p99_ms'], 2):>8} "
        f"max {_fmt(s['all']['max_ms']):>8} ms  "
        f"writes p99 {_fmt(s['writes']['p99_ms']):>7}  err {s['errors']:>3}  hit {_fmt(s['hit_ratio'], 2):>4}  "
        f"USS {s['server']['uss_mib']:7.1f} PSS {s['server']['pss_mib']:7.1f} MiB  "
        f"cache {_fmt(s['server'].get('response_cache_mib')):>5} MiB  fds {s['server']['fds']:>4}  "
        f"db conns {s['database']['connections']}"
    )


def _peak_line(peak: dict[str, Any] | None, share: float) -> str:
    if peak is None:
        return "rate given (--rate): no peak measured"
    return (
        f"peak (closed loop, {PEAK_CONNECTIONS} connections): reads alone {peak['reads']['rps']:.1f} req/s, "
        f"the 95/5 mix {peak['mix']['rps']:.1f} req/s; the soak runs at {share:.0%} of the "
        f"{'mix' if peak['of'] == 'mix' else 'reads'}'s"
    )


def _fill_line(fill: dict[str, Any] | None) -> str:
    if fill is None:
        return "no fill before the soak (--fill-minutes 0)"
    cache, uss = fill["response_cache_mib"], fill["uss_mib"]
    return (
        f"fill at saturation (reads, then the mix): {fill['seconds']:.0f} s, {fill['requests']:,} requests, "
        f"{fill['errors']} errors; "
        f"response cache {cache['before']} -> {cache['after']} MiB of {cache['bound']}; "
        f"server USS {uss['before']} -> {uss['after']} MiB; ended: {fill['ended']}"
    )


def summary(result: dict[str, Any]) -> str:
    soak, verdict = result["soak"], result["verdict"]
    lines = [
        "",
        f"soak on {result['dialect']}: {result['config']['posts']:,} posts, target {result['target_rps']:.1f} req/s "
        f"{result['config']['seconds'] / 60:.1f} min",
        _peak_line(result["peak"], result["config"]["load"]),
        _fill_line(result["fill"]),
        "",
        "| minute | requests | req/s | p50 ms | p99 ms | max ms | reads p99 | writes p99 | errors | hit ratio | "
        "USS MiB | PSS MiB | fds | db conns |",
        "| --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ]
    for s in result["samples"]:
        lines.append(
            f"| {s['t_s'] / 60:.2f} | {s['requests']} | {s['rps']:.1f} | {_fmt(s['all']['p50_ms'], 2)} | "
            f"{_fmt(s['all']['p99_ms'], 2)} | {_fmt(s['all']['max_ms'])} | {_fmt(s['reads']['p99_ms'], 2)} | "
            f"{_fmt(s['writes']['p99_ms'], 2)} | {s['errors']} | {_fmt(s['hit_ratio'], 3)} | "
            f"{s['server']['uss_mib']:.1f} | {s['server']['pss_mib']:.1f} | {s['server']['fds']} | "
            f"{s['database']['connections']} |"
        )
    g = result["generator"]
    lines += [
        "",
        f"requests: {soak['completed']:,} of {soak['scheduled']:,} scheduled ({soak['achieved_rps']:.1f} req/s); "
        f"p50 {_fmt(soak['all']['p50_ms'], 2)} ms, p99 {_fmt(soak['all']['p99_ms'], 2)} ms, "
        f"max {_fmt(soak['all']['max_ms'])} ms; cache hit ratio {soak['hit_ratio']}",
        f"writes saved: {result['writes']['saved']} ("
        + ", ".join(f"{k} {v}" for k, v in result["writes"]["by_kind"].items())
        + f"); failed {result['writes']['failed']} (of which in the store all the same: "
        + (", ".join(f"{k} {v}" for k, v in result["writes"]["failed_but_in_the_store"].items()) or "none")
        + ")",
        f"load generator: {g['cpu_seconds']:.1f} s CPU ({g['cpu_percent_of_one_core']:.1f}% of one core); "
        f"server {g['server_cpu_percent_of_one_core']:.1f}% of one core",
        f"verdict ({verdict['windows']}): {'PASSED' if verdict['passed'] else 'FAILED'}",
    ]
    for name, check in verdict["checks"].items():
        detail = ", ".join(f"{k} {v}" for k, v in check.items() if k != "passed")
        lines.append(f"  {'ok  ' if check['passed'] else 'FAIL'} {name}: {detail}")
    return "\n".join(lines)


def server_log_digest(log: Path) -> dict[str, Any]:
    """The server log's exceptions (the last line of each traceback) and warnings, counted, and its last lines."""
    if not log.exists():
        return {"path": str(log), "lines": 0}
    lines = log.read_text(errors="replace").splitlines()
    exception = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Warning)\b.*")
    found: Counter[str] = Counter()
    for line in lines:
        if exception.match(line) or line.startswith(("ERROR", "WARNING", "unexpected error")):
            found[line[:300]] += 1
    return {"path": str(log), "lines": len(lines), "counted": dict(found.most_common(20)), "last": lines[-20:]}

"""Render ``bench/opamp_load.py`` JSON results as the Markdown tables of docs/benchmarks.md.

    python bench/report.py bench/results/ws-1k-pg.json bench/results/ws-10k-pg.json ...

Every number in the tables comes from the files given; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Row = tuple[str, Callable[[dict[str, Any]], Any]]


def _get(data: dict[str, Any], *path: str) -> Any:
    value: Any = data
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _gen2(data: dict[str, Any]) -> str:
    pauses = _get(data, "server_probe", "gc_pauses_over_2ms", "gen2")
    if not pauses:
        return "0"
    return f"{pauses['count']} (max {pauses['max_ms']:.0f} ms)"


def _commit(data: dict[str, Any]) -> str:
    code = data.get("code") or {}
    dirty = " + uncommitted" if code.get("uncommitted_server_files") else ""
    return f"{code.get('commit') or '?'}{dirty}"


SETUP: list[Row] = [
    ("FlowGate commit", _commit),
    (
        "server workers / database",
        lambda d: f"{d['config']['server_workers']} / {d['config']['database']}",
    ),
    ("server settings", lambda d: ", ".join(d["config"].get("server_env") or []) or "defaults"),
    ("other processes' CPU, steady (%)", lambda d: _fmt(d["steady"]["cpu_pct"]["other"])),
]

STEADY: list[Row] = [
    (
        "agents connected / target",
        lambda d: f"{_fmt(d['agents']['connected'])} / {_fmt(d['agents']['target'])}",
    ),
    (
        "messages/s answered (expected)",
        lambda d: f"{_fmt(d['steady']['answered_per_s'])} ({_fmt(d['steady']['expected_per_s'])})",
    ),
    (
        "reply p50 / p90 / p99 / max (ms)",
        lambda d: " / ".join(
            _fmt(d["steady"]["reply_ms"][k]) for k in ("p50", "p90", "p99", "max")
        ),
    ),
    (
        "send lateness p99 / max (ms)",
        lambda d: " / ".join(_fmt(d["steady"]["lateness_ms"][k]) for k in ("p99", "max")),
    ),
    ("server CPU (% of one core)", lambda d: _fmt(d["steady"]["cpu_pct"]["server"])),
    (
        "server CPU per message (µs)",
        lambda d: _fmt(
            10_000 * d["steady"]["cpu_pct"]["server"] / d["steady"]["answered_per_s"]
            if d["steady"]["answered_per_s"] and d["steady"]["cpu_pct"]["server"] is not None
            else None
        ),
    ),
    (
        "generator / PostgreSQL / other CPU (%)",
        lambda d: " / ".join(
            _fmt(d["steady"]["cpu_pct"][k]) for k in ("generator", "postgres", "other")
        ),
    ),
    (
        "server RSS idle → end (MiB)",
        lambda d: (
            f"{_fmt(d['server_memory']['rss_idle_kib'] / 1024)}"
            f" → {_fmt(d['server_memory']['rss_end_kib'] / 1024)}"
        ),
    ),
    ("server KiB per agent", lambda d: _fmt(d["server_memory"]["kib_per_agent"])),
    ("DB commits/s", lambda d: _fmt(_get(d, "steady", "db", "commits_per_s"))),
    ("DB rows written/s", lambda d: _fmt(_get(d, "steady", "db", "rows_written_per_s"))),
    ("DB read-only transactions/s", lambda d: _fmt(_get(d, "steady", "db", "rollbacks_per_s"))),
    (
        "server flush statements/s",
        lambda d: _fmt(_get(d, "steady", "server_writes", "statements_per_s")),
    ),
    ("server rows flushed/s", lambda d: _fmt(_get(d, "steady", "server_writes", "rows_per_s"))),
    ("server gen-2 GC pauses in window", _gen2),
]

CONNECT: list[Row] = [
    ("seconds until all answered", lambda d: _fmt(d["connect_phase"]["seconds"])),
    ("agents enrolled per second", lambda d: _fmt(d["connect_phase"]["agents_per_s"])),
    ("failed attempts (retried)", lambda d: _fmt(d["connect_phase"]["failed_attempts"])),
    ("agents given up", lambda d: _fmt(d["agents"]["failed"])),
    (
        "time to connect p50 / p99 (s)",
        lambda d: " / ".join(
            _fmt(_ms_to_s(d["connect_phase"]["time_to_connect_ms"][k])) for k in ("p50", "p99")
        ),
    ),
    (
        "full-state reply p50 / p99 (s)",
        lambda d: " / ".join(
            _fmt(_ms_to_s(d["connect_phase"]["full_state_reply_ms"][k])) for k in ("p50", "p99")
        ),
    ),
    (
        "heartbeat reply p99 during ramp (ms)",
        lambda d: _fmt(d["connect_phase"]["heartbeat_reply_ms"]["p99"]),
    ),
    (
        "server / PostgreSQL / other CPU (%)",
        lambda d: " / ".join(
            _fmt(d["connect_phase"]["cpu_pct"][k]) for k in ("server", "postgres", "other")
        ),
    ),
    (
        "DB commits/s, rows written/s",
        lambda d: (
            f"{_fmt(_get(d, 'connect_phase', 'db', 'commits_per_s'))}"
            f", {_fmt(_get(d, 'connect_phase', 'db', 'rows_written_per_s'))}"
        ),
    ),
]


def _kinds(data: dict[str, Any]) -> str:
    kinds = _get(data, "reconnect", "failed_attempts_by_kind") or {}
    return ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(kinds.items())) or "none"


def _db_storm(data: dict[str, Any]) -> str:
    db = _get(data, "reconnect", "db_during_storm")
    if not db:
        return "n/a"
    return f"{_fmt(db['transactions'])} ({_fmt(db['xact_commit'])} commits)"


def _batched(data: dict[str, Any]) -> str:
    reads = _get(data, "reconnect", "server_batched_reads") or {}
    if not reads:
        return "n/a"
    return " / ".join(
        f"{_fmt(int(reads.get(f'reads_{r}', 0)))} for {_fmt(int(reads.get(f'keys_{r}', 0)))}"
        for r in ("identity", "state")
    )


RECONNECT: list[Row] = [
    (
        "agents back / failed",
        lambda d: f"{_fmt(d['reconnect']['agents'])} / {_fmt(d['reconnect']['agents_failed'])}",
    ),
    ("server down: stop → ready (s)", lambda d: _fmt(d["reconnect"]["server_down_s"])),
    (
        "after ready: all connected / answered / healthy (s)",
        lambda d: " / ".join(
            _fmt(d["reconnect"][k])
            for k in (
                "seconds_until_all_connected",
                "seconds_until_all_answered",
                "seconds_until_all_healthy",
            )
        ),
    ),
    (
        "after ready: answered p50 / p99 (s)",
        lambda d: " / ".join(
            _fmt(d["reconnect"]["from_ready_s"][k]) for k in ("answered_p50", "answered_p99")
        ),
    ),
    ("failed attempts by kind (retried)", _kinds),
    (
        "full-state reply p50 / p99 (ms)",
        lambda d: " / ".join(
            _fmt(d["reconnect"]["full_state_reply_ms"][k]) for k in ("p50", "p99")
        ),
    ),
    ("DB transactions, stop → all answered", _db_storm),
    ("batched reads for agents: identity / state", _batched),
]


def _vs_floor(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda d: _fmt(_get(d, "vs_floor", key))


def _ratio(key: str) -> Callable[[dict[str, Any]], str]:
    def cell(d: dict[str, Any]) -> str:
        value = _get(d, "vs_floor", key)
        return "n/a" if value is None else f"{value:.2f}x"

    return cell


# Same agents, same schedule, one after the other in one run: FlowGate, then the Python floor
# (bench/opamp_floor.py), so the ratio holds on a noisy machine where absolute numbers drift.
FLOOR: list[Row] = [
    ("floor WebSocket implementation", lambda d: _get(d, "vs_floor", "floor_ws") or "default"),
    (
        "messages/s answered: FlowGate / floor",
        lambda d: f"{_vs_floor('messages_per_s')(d)} / {_vs_floor('floor_messages_per_s')(d)}",
    ),
    (
        "server CPU per message (µs): FlowGate / floor",
        lambda d: (
            f"{_vs_floor('cpu_us_per_message')(d)} / {_vs_floor('floor_cpu_us_per_message')(d)}"
        ),
    ),
    ("CPU per message, FlowGate ÷ floor", _ratio("cpu_ratio")),
    (
        "server KiB per agent: FlowGate / floor",
        lambda d: f"{_vs_floor('kib_per_agent')(d)} / {_vs_floor('floor_kib_per_agent')(d)}",
    ),
    ("KiB per agent, FlowGate ÷ floor", _ratio("memory_ratio")),
    ("KiB per agent FlowGate holds above the floor", _vs_floor("kib_per_agent_over_floor")),
    ("floor reply p99 (ms)", lambda d: _fmt(_get(d, "floor", "steady", "reply_ms", "p99"))),
]


def _ms_to_s(value: float | None) -> float | None:
    return None if value is None else value / 1000


def table(runs: list[tuple[str, dict[str, Any]]], rows: list[Row]) -> str:
    lines = ["| | " + " | ".join(name for name, _ in runs) + " |"]
    lines.append("|---|" + "---|" * len(runs))
    for label, getter in rows:
        cells = []
        for _, data in runs:
            try:
                cells.append(str(getter(data)))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("n/a")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("results", nargs="+", type=Path)
    args = parser.parse_args()
    runs = [(path.stem, json.loads(path.read_text())) for path in args.results]
    print("Setup:\n")
    print(table(runs, SETUP))
    print("\nSteady state (heartbeats due inside the measurement window):\n")
    print(table(runs, STEADY))
    print("\nConnect phase (new agents enrolling, full state first):\n")
    print(table(runs, CONNECT))
    restarts = [(name, data) for name, data in runs if data.get("reconnect")]
    if restarts:
        print("\nReconnect after a server restart (known agents, their own OpAMP tokens):\n")
        print(table(restarts, RECONNECT))
    floored = [(name, data) for name, data in runs if "vs_floor" in data]
    if floored:
        print("\nAgainst the Python floor in the same run (bench/opamp_floor.py):\n")
        print(table(floored, FLOOR))


if __name__ == "__main__":
    main()

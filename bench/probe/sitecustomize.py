"""Server-side probe for ``bench/opamp_load.py --probe``: garbage-collector pauses and flushes.

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``; the load generator starts the
server with this directory on it and ``FLOWGATE_BENCH_PROBE`` set to a file prefix. Nothing in
FlowGate changes: the probe registers a ``gc.callbacks`` hook and wraps ``Presence.flush`` at run
time, and writes one JSON line per event (times from ``time.monotonic()``, which every process
on the machine shares) to ``<prefix>.<pid>.jsonl``. Without the variable it does nothing.
"""

from __future__ import annotations

import gc
import json
import os
import time
from typing import Any

_PREFIX = os.environ.get("FLOWGATE_BENCH_PROBE")
_MIN_GC_SECONDS = 0.002


def _install(prefix: str) -> None:
    out = open(f"{prefix}.{os.getpid()}.jsonl", "a", buffering=1)  # noqa: SIM115 - process-long
    started = [0.0]

    def emit(**event: Any) -> None:
        out.write(json.dumps(event) + "\n")

    def on_gc(phase: str, info: dict[str, int]) -> None:
        now = time.monotonic()
        if phase == "start":
            started[0] = now
        elif now - started[0] >= _MIN_GC_SECONDS:
            emit(kind="gc", t=started[0], gen=info["generation"], ms=(now - started[0]) * 1000)

    gc.callbacks.append(on_gc)

    try:
        from flowgate.fleet import presence
    except ImportError:  # not the FlowGate server
        return
    original = presence.Presence.flush

    async def flush(self: presence.Presence) -> int:
        began = time.monotonic()
        rows = await original(self)
        if rows:
            emit(kind="flush", t=began, rows=rows, ms=(time.monotonic() - began) * 1000)
        return rows

    presence.Presence.flush = flush  # type: ignore[method-assign]


if _PREFIX:
    _install(_PREFIX)

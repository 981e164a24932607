"""FastAPI runs a plain ``def`` dependency on its thread pool: a thread hop, and a wake-up
of the event loop after it, for each such dependency of every request. FlowGate's
dependencies only read ``app.state`` or pass the unit of work along, so each is ``async def``
and runs inline. One request at a time that bought no measurable latency; with 16 clients at
once, counts of a 100k fleet went from 150-187 to 173-240 requests/s (``docs/benchmarks.md``,
"Per-request cost")."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant

from flowgate.core.settings import Settings
from flowgate.main import create_app


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def test_every_route_dependency_runs_on_the_event_loop(tmp_path: Any) -> None:
    app = create_app(Settings(data_dir=tmp_path, secret_key="k" * 48))
    # The routes as served: each included router's routes with its own dependencies added.
    routes = [
        context
        for mounted in app.routes
        if hasattr(mounted, "effective_route_contexts")
        for context in mounted.effective_route_contexts()
    ]
    assert len(routes) > 50  # the API is mounted, not an empty app
    sync = {
        f"{call.__module__}.{call.__qualname__}"
        for route in routes
        for call in _calls(route.dependant)
        if not (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call))
    }
    assert not sync, f"sync dependencies run on the thread pool: {sorted(sync)}"

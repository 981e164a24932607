"""A Server-Sent Events client for tests: reads a live stream in a thread, parses its frames."""

from __future__ import annotations

import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.server import LiveServer


@dataclass
class Frame:
    """One dispatched SSE block: an event (``event``/``data``/``id``), a comment or ``retry``."""

    event: str | None = None
    data: str | None = None
    id: str | None = None
    retry: str | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        assert self.data is not None, self
        return json.loads(self.data)


class EventStream:
    """``GET /api/v1/events`` kept open; ``next()`` waits for the next frame matching a filter.

    ``ended`` is set when the server closes the stream."""

    def __init__(
        self,
        base_url: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
    ) -> None:
        self.frames: queue.Queue[Frame] = queue.Queue()
        self.seen: list[Frame] = []
        self.ended = threading.Event()
        self._client = httpx.Client(
            base_url=base_url, timeout=httpx.Timeout(15, read=120), cookies=cookies
        )
        self._context = self._client.stream("GET", "/api/v1/events", params=params, headers=headers)
        self.response = self._context.__enter__()
        self._thread: threading.Thread | None = None
        if self.response.status_code == 200:
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()
        else:
            self.response.read()
            self.ended.set()

    @classmethod
    def open(cls, server: LiveServer, org_id: str, **kwargs: Any) -> EventStream:
        return cls(server.url, params={"org_id": org_id}, **kwargs)

    def _read(self) -> None:
        current = Frame()
        try:
            for line in self.response.iter_lines():
                if line == "":
                    self.frames.put(current)
                    current = Frame()
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    current.comments.append(value)
                elif name in ("event", "data", "id", "retry"):
                    setattr(current, name, value)
        except Exception:
            pass  # closed by close() or the server
        finally:
            self.ended.set()

    def next(self, event: str | None = None, timeout: float = 10, **match: Any) -> Frame:
        """The next frame with this ``event`` name whose JSON data contains ``match``; frames
        passed over are kept in ``seen``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                frame = self.frames.get(timeout=max(0.01, remaining))
            except queue.Empty:
                raise AssertionError(
                    f"no {event or 'frame'} {match or ''} within {timeout}s; seen: {self.seen}"
                ) from None
            self.seen.append(frame)
            if event is not None and frame.event != event:
                continue
            if match and not (
                isinstance(frame.json, dict)
                and all(frame.json.get(k) == v for k, v in match.items())
            ):
                continue
            return frame

    def drain(self) -> list[Frame]:
        """Every frame received so far and not yet taken by ``next``."""
        while True:
            try:
                self.seen.append(self.frames.get_nowait())
            except queue.Empty:
                return self.seen

    def wait_ended(self, timeout: float = 15) -> None:
        assert self.ended.wait(timeout), "the server did not end the stream"

    def close(self) -> None:
        self.response.close()
        self._context.__exit__(None, None, None)
        self._client.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

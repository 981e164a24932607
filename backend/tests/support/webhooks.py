"""A real HTTP webhook receiver for tests: a threaded HTTP server on a free port that checks
every delivery's signature and timestamp the way docs/alerting.md tells receivers to."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Deliveries whose signed timestamp is older than this are refused (replays).
TOLERANCE_SECONDS = 300


@dataclass
class Delivery:
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


@dataclass
class Receiver:
    """Answers 500 to the first ``fail_first`` requests, then 200 to verified ones (401 to
    anything whose signature or timestamp does not check out)."""

    secret: str | None = None
    fail_first: int = 0
    requests: int = 0
    rejected: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    failed_at: list[float] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [d.body for d in self.deliveries if event is None or d.body["event"] == event]

    def check(self, headers: dict[str, str], raw: bytes) -> str | None:
        """Why the delivery is refused, or None."""
        if self.secret is None:
            return "no secret configured"
        expected = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, headers.get("x-flowgate-signature", "")):
            return "bad signature"
        body = json.loads(raw)
        stamp = headers.get("x-flowgate-timestamp", "")
        if stamp != str(body.get("timestamp")):
            return "timestamp header does not match the signed body"
        if abs(time.time() - int(stamp)) > TOLERANCE_SECONDS:
            return "stale timestamp"
        if headers.get("x-flowgate-delivery") != body.get("delivery_id"):
            return "delivery id mismatch"
        return None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.requests += 1
                    failing = receiver.requests <= receiver.fail_first
                    problem = None if failing else receiver.check(headers, raw)
                    if failing:
                        receiver.failed_at.append(time.monotonic())
                    elif problem:
                        receiver.rejected.append(problem)
                    else:
                        receiver.deliveries.append(
                            Delivery(headers, json.loads(raw), time.monotonic())
                        )
                code = 500 if failing else 401 if problem else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

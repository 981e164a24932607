"""OpAMP load generator: N simulated agents over WebSocket or plain HTTP against FlowGate.

Each agent has its own 16-byte UUIDv7 ``instance_uid``, enrols natively with a registration token,
sends its full state first (description, capabilities, ~1 KB effective config, health) and then
heartbeats ``{instance_uid, sequence_num, capabilities}`` on a fixed schedule, staggered evenly
across the heartbeat interval. A ``ReportFullState`` flag in a reply is answered with full state.

The schedule is open loop: a message is due at a fixed time whatever happened before, and the
run records both how late each message left (generator lateness) and how long its reply took
(send -> reply). Agents are spread over several worker processes, each with its own uvloop and its
own 127.0.0.x source addresses, because one process may hold at most 20,000 open files and one
(source address, destination) pair has only ~28k ephemeral ports.

Phases: connect ramp (``--connect-rate`` new agents/s, each sending full state), settle, then a
steady window of ``--duration`` seconds in which heartbeat latency, server CPU, server RSS and
database writes are measured. One JSON object goes to stdout; progress goes to stderr.

``--reconnect`` adds a restart: agents take the OpAMP token the server offers them
(``connection_settings.opamp`` headers), and after the steady window the private server is
stopped and started again on the same data directory and database. Once it is ready, every
agent comes back at once with its own token and uid (retrying on 503/UNAVAILABLE like a real
agent) and the ``reconnect`` section reports how long until all were connected, answered and
healthy, the failed attempts by kind, and the database transactions of the storm.

By default a private server is started (``flowgate serve`` with its own data directory, port and
secret; PostgreSQL gets a fresh database that is dropped afterwards). ``--url`` targets a running
server instead (then pass ``--token``, and ``--server-pid`` / ``--pg-database`` for the server
and database metrics).

Examples::

    python bench/opamp_load.py --agents 1000 --transport ws --database postgres
    python bench/opamp_load.py --agents 10000 --transport ws --heartbeat 30 --duration 120 \\
        --database postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import importlib.util
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flowgate.opamp.proto import anyvalue_pb2, opamp_pb2

# --- protocol constants ------------------------------------------------------------------------

CAPABILITIES = int(
    opamp_pb2.AgentCapabilities_ReportsStatus
    | opamp_pb2.AgentCapabilities_ReportsEffectiveConfig
    | opamp_pb2.AgentCapabilities_ReportsHealth
    | opamp_pb2.AgentCapabilities_ReportsHeartbeat
)
REPORT_FULL_STATE = int(opamp_pb2.ServerToAgentFlags_ReportFullState)
ACCEPTS_CONNECTION_SETTINGS = int(opamp_pb2.AgentCapabilities_AcceptsOpAMPConnectionSettings)
UNAVAILABLE = int(opamp_pb2.ServerErrorResponseType_Unavailable)
WS_HEADER = b"\x00"
PROTOBUF = "application/x-protobuf"
OPAMP_PATH = "/v1/opamp"
SLOW_REPLY = 0.050  # seconds: the p99 target
MAX_SOCKETS_PER_WORKER = 15_000
AGENTS_PER_WORKER_DEFAULT = 5_000
FIRST_SOURCE_OCTET = 10  # 127.0.0.10, .11, ...: away from the server's 127.0.0.1
PG_DSN = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}

EFFECTIVE_CONFIG_TEMPLATE = """\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
      http:
        endpoint: 0.0.0.0:4318
  hostmetrics:
    collection_interval: 30s
    scrapers:
      cpu: {{}}
      memory: {{}}
      filesystem: {{}}
processors:
  memory_limiter:
    check_interval: 1s
    limit_percentage: 80
    spike_limit_percentage: 20
  batch:
    send_batch_size: 8192
    timeout: 5s
  resource:
    attributes:
      - key: host.name
        value: {host}
        action: upsert
      - key: deployment.environment
        value: bench
        action: insert
exporters:
  otlphttp:
    endpoint: https://otlp.example.com:4318
    compression: gzip
    retry_on_failure:
      enabled: true
      max_elapsed_time: 300s
    sending_queue:
      enabled: true
      queue_size: 5000
extensions:
  health_check:
    endpoint: 0.0.0.0:13133
  opamp:
    server:
      ws:
        endpoint: ws://flowgate.example.com:4320/v1/opamp
service:
  extensions: [health_check, opamp]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, resource, batch]
      exporters: [otlphttp]
    metrics:
      receivers: [otlp, hostmetrics]
      processors: [memory_limiter, resource, batch]
      exporters: [otlphttp]
"""


def uuid7() -> bytes:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, version 7, variant 10, random rest."""
    ms = time.time_ns() // 1_000_000
    raw = bytearray(ms.to_bytes(6, "big") + secrets.token_bytes(10))
    raw[6] = (raw[6] & 0x0F) | 0x70
    raw[8] = (raw[8] & 0x3F) | 0x80
    return bytes(raw)


def _kv(key: str, value: str) -> anyvalue_pb2.KeyValue:
    return anyvalue_pb2.KeyValue(key=key, value=anyvalue_pb2.AnyValue(string_value=value))


def full_state(uid: bytes, seq: int, index: int, started_ns: int) -> opamp_pb2.AgentToServer:
    """What a Collector reports first and after ``ReportFullState``."""
    host = f"bench-host-{index:06d}"
    msg = opamp_pb2.AgentToServer(instance_uid=uid, sequence_num=seq, capabilities=CAPABILITIES)
    desc = msg.agent_description
    desc.identifying_attributes.extend(
        [
            _kv("service.name", "otelcol-contrib"),
            _kv("service.instance.id", str(uuid.UUID(bytes=uid))),
            _kv("service.version", "0.111.0"),
        ]
    )
    desc.non_identifying_attributes.extend(
        [_kv("host.name", host), _kv("os.type", "linux"), _kv("host.arch", "amd64")]
    )
    config = msg.effective_config.config_map.config_map[""]
    config.body = EFFECTIVE_CONFIG_TEMPLATE.format(host=host).encode()
    config.content_type = "text/yaml"
    health = msg.health
    health.healthy = True
    health.status = "StatusOK"
    health.start_time_unix_nano = started_ns
    health.status_time_unix_nano = started_ns
    for pipeline in ("pipeline:traces", "pipeline:metrics"):
        part = health.component_health_map[pipeline]
        part.healthy = True
        part.status = "StatusOK"
        part.status_time_unix_nano = started_ns
    if COMPONENTS is not None:
        msg.available_components.CopyFrom(COMPONENTS)
    return msg


#: ``--components``: the AvailableComponents every agent reports in its full state (one
#: build's map, one hash), or None.
COMPONENTS: opamp_pb2.AvailableComponents | None = None


def components_report(count: int) -> opamp_pb2.AvailableComponents:
    """A map of ``count`` components under one hash, as agents of one Collector build send."""
    report = opamp_pb2.AvailableComponents(hash=b"\x5a" * 32)
    kinds = ["receivers", "processors", "exporters", "extensions", "connectors"]
    for i in range(count):
        kind = kinds[i % len(kinds)]
        name = f"{kind[:-1]}{i:03d}"
        entry = report.components[kind].sub_component_map[name]
        where = f"github.com/open-telemetry/opentelemetry-collector-contrib/{kind[:-1]}/{name}"
        entry.metadata.add(key="code.namespace").value.string_value = where
        entry.metadata.add(key="version").value.string_value = "v0.135.0"
    return report


def heartbeat(uid: bytes, seq: int) -> opamp_pb2.AgentToServer:
    return opamp_pb2.AgentToServer(instance_uid=uid, sequence_num=seq, capabilities=CAPABILITIES)


# --- latency histogram -------------------------------------------------------------------------


class Histogram:
    """Log-bucketed histogram of seconds (1 % relative resolution), mergeable across processes."""

    BASE = math.log(1.01)
    FLOOR = 1e-6

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        value = max(seconds, self.FLOOR)
        self.buckets[int(math.log(value / self.FLOOR) / self.BASE)] += 1
        self.count += 1
        self.total += seconds
        self.max = max(self.max, seconds)

    def merge(self, other: Histogram) -> None:
        self.buckets.update(other.buckets)
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float:
        if not self.count:
            return math.nan
        rank = q * self.count
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return min(self.FLOOR * math.exp((bucket + 1) * self.BASE), self.max)
        return self.max

    def summary_ms(self) -> dict[str, float | int | None]:
        def ms(value: float) -> float | None:
            return None if math.isnan(value) else round(value * 1000, 2)

        return {
            "count": self.count,
            "p50": ms(self.quantile(0.50)),
            "p90": ms(self.quantile(0.90)),
            "p99": ms(self.quantile(0.99)),
            "max": ms(self.max) if self.count else None,
            "mean": ms(self.total / self.count) if self.count else None,
        }

    def to_wire(self) -> dict[str, Any]:
        return {
            "buckets": dict(self.buckets),
            "count": self.count,
            "total": self.total,
            "max": self.max,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Histogram:
        hist = cls()
        hist.buckets = Counter({int(k): int(v) for k, v in data["buckets"].items()})
        hist.count = int(data["count"])
        hist.total = float(data["total"])
        hist.max = float(data["max"])
        return hist


# --- worker process ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerConfig:
    worker: int
    indices: tuple[int, ...]  # global agent numbers simulated by this worker
    total_agents: int
    transport: str
    base_url: str  # http://host:port
    token: str
    heartbeat: float
    connect_rate: float
    source_addresses: tuple[str, ...]
    reply_timeout: float
    connect_timeout: float
    reconnect: bool = False  # take the offered OpAMP token; come back after a restart
    components: int = 0  # report a map of this many available components (one build's)


@dataclass
class WorkerStats:
    connect: Histogram = field(default_factory=Histogram)  # TCP + WebSocket upgrade
    upgraded_at: Histogram = field(default_factory=Histogram)  # reconnect: ready -> upgrade
    first_reply: Histogram = field(default_factory=Histogram)  # full state -> reply (enrolment)
    time_to_connect: Histogram = field(default_factory=Histogram)  # schedule -> answered, retries
    connect_errors: int = 0  # failed attempts (each retried until --connect-timeout)
    ramp_latency: Histogram = field(default_factory=Histogram)  # heartbeats before the window
    latency: Histogram = field(default_factory=Histogram)  # heartbeats due in the window
    lateness: Histogram = field(default_factory=Histogram)  # send time - due time, window
    connected: int = 0
    failed: int = 0
    lost: int = 0  # connected, then dropped (error, timeout, server close)
    sent: int = 0  # window
    answered: int = 0  # window
    full_state_requested: int = 0
    error_responses: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    # Replies slower than SLOW_REPLY, by second of the window their message was due in: shows
    # whether slow replies come in bursts (a stalled server loop) and with what period.
    slow_by_second: Counter[int] = field(default_factory=Counter)

    def to_wire(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, value in vars(self).items():
            if isinstance(value, Histogram):
                data[name] = value.to_wire()
            elif isinstance(value, Counter):
                data[name] = dict(value)
            else:
                data[name] = value
        return data

    def merge_wire(self, data: dict[str, Any]) -> None:
        for name, value in data.items():
            mine = getattr(self, name)
            if isinstance(mine, Histogram):
                mine.merge(Histogram.from_wire(value))
            elif isinstance(mine, Counter):
                mine.update(value)
            else:
                setattr(self, name, mine + value)


class AgentDropped(Exception):
    """The exchange failed; ``retry_after`` is the server's hint (Retry-After), if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryLater(Exception):
    """The server answered UNAVAILABLE on an open WebSocket: keep it, resend after a pause."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"UNAVAILABLE, retry after {seconds:g}s")
        self.seconds = seconds


def _retry_after(exc: BaseException) -> float | None:
    """The server's Retry-After for a failed attempt (HTTP 503/429, refused upgrade)."""
    if isinstance(exc, AgentDropped):
        return exc.retry_after
    response = getattr(exc, "response", None)  # websockets.InvalidStatus
    headers = getattr(response, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    return _seconds(value)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP-date: FlowGate sends seconds


class Worker:
    def __init__(self, cfg: WorkerConfig, pipe: multiprocessing.connection.Connection) -> None:
        self.cfg = cfg
        self.pipe = pipe
        self.stats = WorkerStats()
        self.t0 = 0.0  # ramp start (time.monotonic(), shared by all processes)
        self.window: tuple[float, float] | None = None
        self.stopping = False
        self.attempted = 0
        self.in_flight = 0
        self.drained = asyncio.Event()
        self.commands: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.sockets: list[Any] = []
        #: --reconnect: index -> (uid, start time, the OpAMP token the server offered).
        self.known: dict[int, tuple[bytes, int, str]] = {}
        self.t_restart: float | None = None  # --reconnect: when the server was ready again

    # -- control channel (orchestrator <-> worker) ------------------------------------------------
    def _on_pipe(self) -> None:
        while self.pipe.poll():
            try:
                command = self.pipe.recv()
            except EOFError:
                command = ("stop", None)
                asyncio.get_running_loop().remove_reader(self.pipe.fileno())
            self.commands.put_nowait(command)
            if command[0] == "stop":
                return

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.pipe.fileno(), self._on_pipe)
        self.pipe.send(("ready", self.cfg.worker))
        kind, t0 = await self.commands.get()
        if kind != "start":
            return
        self.t0 = float(t0)
        tasks = [
            asyncio.create_task(self._agent(index, position))
            for position, index in enumerate(self.cfg.indices)
        ]
        while True:
            kind, value = await self.commands.get()
            if kind == "window":
                self.window = (float(value[0]), float(value[1]))
                await _sleep_until(self.window[1])
                break
            if kind == "stop":
                break
        self.stopping = True
        if self.in_flight:  # let replies already on their way arrive
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.cfg.reply_timeout):
                    await self.drained.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not self.cfg.reconnect:  # else the restarting server closes them
            self._abort_sockets()
        self.pipe.send(("result", self.stats.to_wire()))
        if self.cfg.reconnect:
            await self._reconnect_phase()

    def _abort_sockets(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(Exception):
                sock.transport.abort()
        self.sockets = []

    # -- --reconnect: the same agents again, after a server restart ------------------------------
    async def _reconnect_phase(self) -> None:
        """Wait until the restarted server is ready, then bring every known agent back at
        once with its own OpAMP token, heartbeating until told to stop; fresh stats."""
        kind, t_restart = await self.commands.get()
        if kind != "restarting":
            return
        self._abort_sockets()  # the old server closed them
        self.stats = WorkerStats()
        self.window, self.stopping, self.attempted = None, False, 0
        self.t_restart = float(t_restart)
        gc.unfreeze()
        tasks = [
            asyncio.create_task(self._come_back(index, position))
            for position, index in enumerate(self.cfg.indices)
        ]
        while (await self.commands.get())[0] != "stop":
            pass
        self.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._abort_sockets()
        self.pipe.send(("reconnect_result", self.stats.to_wire()))

    async def _come_back(self, index: int, position: int) -> None:
        cfg, restart = self.cfg, self.t_restart
        assert restart is not None
        known = self.known.get(index)
        if known is None:  # never enrolled: nothing to come back with
            self.stats.failed += 1
            self._attempt_done()
            return
        uid, started_ns, token = known
        address = cfg.source_addresses[position % len(cfg.source_addresses)]
        connected = await self._connect(uid, index, started_ns, address, restart, token)
        if connected is None:
            self.stats.failed += 1
            self._attempt_done()
            return
        exchange, reply, seq = connected
        self.stats.connected += 1
        self.stats.time_to_connect.add(time.monotonic() - restart)
        self._attempt_done()
        phase = index * cfg.heartbeat / cfg.total_agents
        await self._heartbeats(uid, index, phase, started_ns, exchange, reply, seq)

    def _attempt_done(self) -> None:
        self.attempted += 1
        if self.attempted == len(self.cfg.indices):
            # Our own collector must not stall the measurement: everything alive now lives
            # until the end, so move it out of the collector's sight.
            gc.collect()
            gc.freeze()
            self.pipe.send(("ramped", (self.stats.connected, self.stats.failed)))

    # -- one agent -----------------------------------------------------------------------------
    async def _agent(self, index: int, position: int) -> None:
        cfg = self.cfg
        uid = uuid7()
        started_ns = time.time_ns()
        phase = index * cfg.heartbeat / cfg.total_agents
        scheduled = self.t0 + index / cfg.connect_rate
        await _sleep_until(scheduled)
        address = cfg.source_addresses[position % len(cfg.source_addresses)]
        connected = await self._connect(uid, index, started_ns, address, scheduled)
        if connected is None:
            self.stats.failed += 1
            self._attempt_done()
            return
        exchange, reply, seq = connected
        self.stats.connected += 1
        self.stats.time_to_connect.add(time.monotonic() - scheduled)
        if cfg.reconnect and (own := offered_token(reply)):
            self.known[index] = (uid, started_ns, own)
        self._attempt_done()
        await self._heartbeats(uid, index, phase, started_ns, exchange, reply, seq)

    async def _connect(
        self,
        uid: bytes,
        index: int,
        started_ns: int,
        address: str,
        scheduled: float,
        token: str | None = None,
    ) -> tuple[Any, opamp_pb2.ServerToAgent, int] | None:
        """Connect and send full state until answered, like a well-behaved agent: after the
        server's Retry-After (503 on a poll or an upgrade, UNAVAILABLE on an open WebSocket,
        which is kept) plus up to 50 % jitter, otherwise after a backoff from 1 s doubling to
        30 s with jitter; give up ``connect_timeout`` after the scheduled time. Returns the
        exchange, the reply and the last sequence number used. ``token``: the agent's own
        OpAMP token (default: the registration token)."""
        cfg = self.cfg
        deadline = scheduled + cfg.connect_timeout
        backoff = 1.0
        seq = 0
        ws: Any = None
        exchange: Any = None
        while True:
            hint: float | None = None
            try:
                async with asyncio.timeout_at(_loop_deadline(deadline)):
                    if exchange is None and cfg.transport == "ws":
                        ws, exchange = await self._ws_open(address, token)
                    elif exchange is None:
                        exchange = self._http_exchange(address, token)
                    sent = time.monotonic()
                    reply = await exchange(full_state(uid, seq, index, started_ns))
                if reply.HasField("error_response"):
                    self.stats.error_responses += 1
                    error = reply.error_response
                    if error.type == UNAVAILABLE and error.HasField("retry_info"):
                        raise RetryLater(error.retry_info.retry_after_nanoseconds / 1e9)
                    raise AgentDropped(f"error_response {error.error_message}")
                self.stats.first_reply.add(time.monotonic() - sent)
                return exchange, reply, seq
            except RetryLater as exc:
                self.stats.connect_errors += 1
                self.stats.errors["connect: error_response UNAVAILABLE"] += 1
                hint = exc.seconds
            except (Exception, AgentDropped) as exc:
                self.stats.connect_errors += 1
                self.stats.errors[f"connect: {_describe(exc)}"] += 1
                hint = _retry_after(exc)
                if ws is not None:
                    self.sockets.remove(ws)
                    ws.transport.abort()
                ws = exchange = None
            seq += 1
            if hint is not None:
                pause = hint * (1 + secrets.randbelow(500) / 1000)
            else:
                pause = backoff * (0.5 + secrets.randbelow(1000) / 1000)
                backoff = min(backoff * 2, 30.0)
            if time.monotonic() + pause >= deadline or self.stopping:
                if ws is not None:
                    self.sockets.remove(ws)
                    ws.transport.abort()
                return None
            await asyncio.sleep(pause)

    async def _heartbeats(
        self,
        uid: bytes,
        index: int,
        phase: float,
        started_ns: int,
        exchange: Any,
        reply: opamp_pb2.ServerToAgent,
        seq: int,
    ) -> None:
        cfg = self.cfg
        want_full = bool(reply.flags & REPORT_FULL_STATE)
        base = self.t0 + phase
        k = max(0, math.ceil((time.monotonic() - base) / cfg.heartbeat))  # next slot on the grid
        while not self.stopping:
            due = base + k * cfg.heartbeat
            k += 1
            if self.window is not None and due >= self.window[1]:
                return
            await _sleep_until(due)
            if self.stopping:
                return
            seq += 1
            if want_full:
                self.stats.full_state_requested += 1
                msg = full_state(uid, seq, index, started_ns)
            else:
                msg = heartbeat(uid, seq)
            sent = time.monotonic()
            in_window = self.window is not None and self.window[0] <= due < self.window[1]
            if in_window:
                self.stats.sent += 1
                self.stats.lateness.add(sent - due)
            self.in_flight += 1
            try:
                async with asyncio.timeout(cfg.reply_timeout):
                    reply = await exchange(msg)
            except Exception as exc:
                self.stats.errors[f"heartbeat: {_describe(exc)}"] += 1
                if cfg.transport == "ws":  # the connection is gone
                    self.stats.lost += 1
                    return
                continue  # an HTTP agent just polls again on schedule
            finally:
                self.in_flight -= 1
                if self.stopping and not self.in_flight:
                    self.drained.set()
            latency = time.monotonic() - sent
            if reply.HasField("error_response"):
                self.stats.error_responses += 1
                self.stats.errors[f"error_response: {reply.error_response.type}"] += 1
            if in_window:
                self.stats.answered += 1
                self.stats.latency.add(latency)
                if latency > SLOW_REPLY:
                    self.stats.slow_by_second[int(due - self.window[0])] += 1  # type: ignore[index]
            else:
                self.stats.ramp_latency.add(latency)
            want_full = bool(reply.flags & REPORT_FULL_STATE)

    async def _ws_open(self, address: str, token: str | None = None) -> tuple[Any, Any]:
        from websockets.asyncio.client import connect

        cfg = self.cfg
        began = time.monotonic()
        ws = await connect(
            "ws" + cfg.base_url.removeprefix("http") + OPAMP_PATH,
            additional_headers={"Authorization": f"Bearer {token or cfg.token}"},
            compression=None,
            proxy=None,
            ping_interval=None,
            open_timeout=cfg.connect_timeout,
            close_timeout=1,
            max_size=4 * 1024 * 1024,
            user_agent_header="flowgate-bench",
            local_addr=(address, 0),
        )
        self.stats.connect.add(time.monotonic() - began)
        if self.t_restart is not None:
            self.stats.upgraded_at.add(time.monotonic() - self.t_restart)
        self.sockets.append(ws)

        async def exchange(msg: opamp_pb2.AgentToServer) -> opamp_pb2.ServerToAgent:
            await ws.send(WS_HEADER + msg.SerializeToString())
            data = await ws.recv()
            if not isinstance(data, bytes) or data[:1] != WS_HEADER:
                raise AgentDropped("unexpected frame")
            return _decode_reply(data[1:])

        return ws, exchange

    def _http_exchange(self, address: str, token: str | None = None) -> Any:
        """One plain-HTTP poll per call, each on a new connection from ``address``.

        A minimal HTTP/1.1 client instead of httpx: httpx cost ~2.3 ms of generator CPU per
        poll here, which on two shared cores would distort the server's numbers. Each poll
        opens a connection, sends ``Connection: close`` and reads to EOF, so the server closes
        first (TIME_WAIT stays on its side, not on our ephemeral ports). Real agents keep the
        connection alive, but uvicorn closes idle keep-alive connections after 5 s, long
        before their next poll, so they reconnect for every poll too.
        """
        split = urlsplit(self.cfg.base_url)
        host, port = split.hostname or "127.0.0.1", split.port or 80
        head = (
            f"POST {OPAMP_PATH} HTTP/1.1\r\nHost: {split.netloc}\r\n"
            f"Authorization: Bearer {token or self.cfg.token}\r\nContent-Type: {PROTOBUF}\r\n"
            "Connection: close\r\nContent-Length: "
        ).encode()

        async def exchange(msg: opamp_pb2.AgentToServer) -> opamp_pb2.ServerToAgent:
            body = msg.SerializeToString()
            reader, writer = await asyncio.open_connection(host, port, local_addr=(address, 0))
            try:
                writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
                status, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
                length = int(headers.get("content-length", 0))
                data = await reader.readexactly(length) if length else await reader.read()
                await reader.read()  # EOF: the server closed
            finally:
                writer.close()
            if status != 200:
                raise AgentDropped(f"HTTP {status}", _seconds(headers.get("retry-after")))
            return _decode_reply(data)

        return exchange


def offered_token(reply: opamp_pb2.ServerToAgent) -> str | None:
    """The OpAMP token a reply offers (``connection_settings.opamp`` Authorization header),
    as the Collector's OpAMP extension reads it."""
    if not reply.HasField("connection_settings"):
        return None
    for header in reply.connection_settings.opamp.headers.headers:
        if header.key.lower() == "authorization":
            return header.value.removeprefix("Bearer ").strip() or None
    return None


def _decode_reply(data: bytes) -> opamp_pb2.ServerToAgent:
    reply = opamp_pb2.ServerToAgent()
    reply.ParseFromString(data)
    return reply


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers of an HTTP/1.1 response head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return status, headers


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:80] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _loop_deadline(when: float) -> float:
    """Convert a time.monotonic() deadline to the running loop's clock."""
    return asyncio.get_running_loop().time() + (when - time.monotonic())


async def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def raise_nofile_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def worker_main(cfg: WorkerConfig, pipe: multiprocessing.connection.Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the orchestrator stops us
    raise_nofile_limit()
    if cfg.reconnect:  # every message of this process says it accepts the offered token
        global CAPABILITIES
        CAPABILITIES |= ACCEPTS_CONNECTION_SETTINGS
    if cfg.components:
        global COMPONENTS
        COMPONENTS = components_report(cfg.components)
    import uvloop

    uvloop.run(Worker(cfg, pipe).run())


# --- orchestrator: server, database, process metrics ----------------------------------------------


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg(sql: str, *params: Any, database: str = "postgres") -> list[dict[str, Any]]:
    import asyncpg

    async def go() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(**PG_DSN, database=database, timeout=10)
        try:
            return [dict(row) for row in await conn.fetch(sql, *params)]
        finally:
            await conn.close()

    return asyncio.run(go())


@dataclass
class Server:
    """A private ``flowgate serve`` process tree with its own data directory and database."""

    workers: int
    database: str
    heartbeat: int
    probe: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="flowgate-bench-")))
    port: int = field(default_factory=free_port)
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    pg_name: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.tmp / "server.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
        env.update(
            FLOWGATE_HOST="127.0.0.1",
            FLOWGATE_PORT=str(self.port),
            FLOWGATE_DATA_DIR=str(self.tmp / "data"),
            FLOWGATE_SECRET_KEY=self.secret_key,
            FLOWGATE_PUBLIC_URL=self.url,
            FLOWGATE_BOOTSTRAP_ADMIN_EMAIL="bench@example.com",
            FLOWGATE_BOOTSTRAP_ADMIN_PASSWORD=self.admin_password,
            FLOWGATE_OPAMP_MAX_MESSAGES_PER_SECOND="1000000",
            FLOWGATE_OPAMP_HEARTBEAT_INTERVAL_SECONDS=str(self.heartbeat),
        )
        if self.workers > 1:  # flowgate serve refuses several workers without a Redis bus
            env["FLOWGATE_REDIS_URL"] = os.environ.get(
                "FLOWGATE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"
            )
        env.update(self.extra_env)
        if self.probe:
            probe_dir = str(Path(__file__).resolve().parent / "probe")
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [probe_dir, env.get("PYTHONPATH")]))
            env["FLOWGATE_BENCH_PROBE"] = str(self.tmp / "probe")
        if self.pg_name:
            env["FLOWGATE_DATABASE_URL"] = (
                f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.pg_name}"
            )
        return env

    def start(self, timeout: float = 60) -> None:
        if self.database == "postgres":
            self.pg_name = f"flowgate_bench_{uuid.uuid4().hex[:12]}"
            _pg(f'CREATE DATABASE "{self.pg_name}"')
        if self.workers > 1:
            self.bootstrap()
        self._launch(timeout)

    def _launch(self, timeout: float) -> None:
        """Start ``flowgate serve`` on this data directory and database; wait until ready."""
        import httpx

        env = self.env()
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flowgate", "serve", "--workers", str(self.workers)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early; see {self.log_path}")
            with contextlib.suppress(httpx.HTTPError):
                ready = httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
                # With several workers, also wait until every one of them is up.
                if ready and len(server_pids(self.proc.pid)) >= self.workers + (self.workers > 1):
                    return
            time.sleep(0.2)
        raise RuntimeError(f"server did not become ready; see {self.log_path}")

    def cli(self, *args: str) -> str:
        """Run ``flowgate <args>`` against this server's database; returns stdout."""
        result = subprocess.run(
            [sys.executable, "-m", "flowgate", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return result.stdout

    def bootstrap(self) -> None:
        """Create org ``default`` and the admin before several workers start: each worker
        bootstraps an empty database on start-up, and two doing it at once collide on the
        unique organisation name, which kills the server (see docs/benchmarks.md)."""
        self.cli("orgs", "create", "default")
        self.cli(
            "users",
            "create",
            "bench@example.com",
            "--password",
            self.admin_password,
            "--org",
            "default",
            "--role",
            "admin",
            "--superuser",
        )

    def create_token(self) -> str:
        out = self.cli("tokens", "create", "--org", "default", "--name", "bench", "--unlimited")
        return out.strip().splitlines()[-1]

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"the server exited (code {self.proc.returncode}); see {self.log_path}"
            )

    def restart(self, stopped: Callable[[], None], timeout: float = 120) -> None:
        """Stop the server (SIGTERM, as an upgrade or a node restart would), call ``stopped``,
        and start it again on the same data directory and database."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        stopped()
        self._launch(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.pg_name:
            with contextlib.suppress(Exception):
                _pg(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        shutil.rmtree(self.tmp / "data", ignore_errors=True)  # keep server.log for the report


@dataclass
class FloorServer:
    """The Python floor (bench/opamp_floor.py) as a subprocess, with :class:`Server`'s face:
    the same agents run against it right after FlowGate, so the two compare in one run."""

    ws: str | None = None
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="flowgate-floor-")))
    port: int = field(default_factory=free_port)
    pg_name: str | None = None  # no database
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.tmp / "floor.log"

    def start(self, timeout: float = 30) -> None:
        command = [sys.executable, str(Path(__file__).with_name("opamp_floor.py"))]
        command += ["--port", str(self.port)] + (["--ws", self.ws] if self.ws else [])
        # The floor always comes from this checkout, even when PYTHONPATH points the FlowGate
        # server at another one (a before/after comparison).
        src = str(Path(__file__).resolve().parent.parent / "backend" / "src")
        env = dict(os.environ, PYTHONPATH=src)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"floor server exited early; see {self.log_path}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.1)
        raise RuntimeError(f"floor server did not start; see {self.log_path}")

    def create_token(self) -> str:
        return "floor"  # the floor checks no credential

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the floor server exited; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def cpu_us_per_message(result: dict[str, Any]) -> float | None:
    """Server CPU per answered steady-state message (µs) of one run's result."""
    steady = result["steady"]
    cpu, rate = steady["cpu_pct"]["server"], steady["answered_per_s"]
    return round(10_000 * cpu / rate, 1) if cpu is not None and rate else None


def with_floor(result: dict[str, Any], floor: dict[str, Any]) -> dict[str, Any]:
    """FlowGate's run plus the floor's, and FlowGate's cost as a ratio to the floor."""

    def ratio(ours: float | None, base: float | None) -> float | None:
        return round(ours / base, 2) if ours is not None and base else None

    ours_us, floor_us = cpu_us_per_message(result), cpu_us_per_message(floor)
    ours_kib = result["server_memory"]["kib_per_agent"]
    floor_kib = floor["server_memory"]["kib_per_agent"]
    if result["config"]["transport"] != "ws":
        floor_kib = None  # an HTTP agent costs the floor nothing between polls: no ratio
    result["floor"] = floor
    result["vs_floor"] = {
        "cpu_us_per_message": ours_us,
        "floor_cpu_us_per_message": floor_us,
        "cpu_ratio": ratio(ours_us, floor_us),
        "kib_per_agent": ours_kib,
        "floor_kib_per_agent": floor_kib,
        "memory_ratio": ratio(ours_kib, floor_kib),
        "kib_per_agent_over_floor": (
            round(ours_kib - floor_kib, 2) if ours_kib is not None and floor_kib else None
        ),
        "messages_per_s": result["steady"]["answered_per_s"],
        "floor_messages_per_s": floor["steady"]["answered_per_s"],
        "floor_ws": floor["config"].get("floor_ws"),
    }
    result["summary"]["cpu_ratio_to_floor"] = result["vs_floor"]["cpu_ratio"]
    result["summary"]["memory_ratio_to_floor"] = result["vs_floor"]["memory_ratio"]
    return result


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def server_pids(root: int) -> list[int]:
    """``root`` and all its descendants (uvicorn's supervisor and workers)."""
    tree = _children()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(tree.get(pid, []))
    return pids


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) used so far by each of ``pids``."""
    used: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    return used


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


PG_COUNTERS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted")


def pg_counters(database: str | None) -> dict[str, int] | None:
    if database is None:
        return None
    rows = _pg(
        "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted"
        " FROM pg_stat_database WHERE datname = $1",
        database,
    )
    return {k: int(v) for k, v in rows[0].items()} if rows else None


def postgres_pids() -> list[int]:
    """Every PostgreSQL process on this machine (the cluster shares our two cores)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
    return pids


def machine_busy_seconds() -> float:
    """CPU seconds spent not idle, all cores together, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


METRICS = {
    "flowgate_opamp_messages_total": "opamp_messages",
    "flowgate_presence_flushes_total": "flushes",
    "flowgate_presence_rows_total": "rows",
    "flowgate_presence_statements_total": "statements",
    "flowgate_presence_flush_failures_total": "flush_failures",
}


def server_metrics(base_url: str) -> dict[str, float] | None:
    """FlowGate's own write counters from ``/metrics`` (one worker's view); None if absent."""
    import httpx

    try:
        response = httpx.get(f"{base_url}/metrics", timeout=10, trust_env=False)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    values: dict[str, float] = {}
    for line in response.text.splitlines():
        name, _, value = line.partition(" ")
        name = name.split("{", 1)[0]  # labelled series (messages by transport) are summed
        if name in METRICS:
            values[METRICS[name]] = values.get(METRICS[name], 0.0) + float(value)
    return values or None


@dataclass
class Snapshot:
    at: float
    server_cpu: dict[int, float] | None
    generator_cpu: dict[int, float]
    postgres_cpu: dict[int, float] | None
    machine_cpu: float
    rss_kib: int | None
    pg: dict[str, int] | None
    metrics: dict[str, float] | None


def db_rates(a: Snapshot, b: Snapshot) -> dict[str, float] | None:
    if a.pg is None or b.pg is None:
        return None
    seconds = b.at - a.at
    delta = {k: b.pg[k] - a.pg[k] for k in a.pg}
    return {
        "commits_per_s": round(delta["xact_commit"] / seconds, 2),
        "rows_written_per_s": round(
            (delta["tup_inserted"] + delta["tup_updated"] + delta["tup_deleted"]) / seconds, 1
        ),
        "rows_updated_per_s": round(delta["tup_updated"] / seconds, 1),
        "rows_inserted_per_s": round(delta["tup_inserted"] / seconds, 1),
        "rollbacks_per_s": round(delta["xact_rollback"] / seconds, 2),
    }


def write_rates(a: Snapshot, b: Snapshot) -> dict[str, float] | None:
    """The server's own batched-write counters (Presence.stats via /metrics), per second."""
    if a.metrics is None or b.metrics is None:
        return None
    seconds = b.at - a.at
    return {
        f"{name}_per_s": round((b.metrics.get(name, 0) - a.metrics.get(name, 0)) / seconds, 2)
        for name in METRICS.values()
    }


def cpu_pct(a: Snapshot, b: Snapshot) -> dict[str, float | None]:
    """CPU use between two snapshots in % of one core (200 = both cores of this machine).

    Per process: a process that started in between counts from zero; one that exited in
    between is missed (PostgreSQL backends come and go with the server's pool).
    """
    seconds = b.at - a.at
    result: dict[str, float | None] = {}
    for name in ("server", "generator", "postgres"):
        before, after = getattr(a, f"{name}_cpu"), getattr(b, f"{name}_cpu")
        if before is None or after is None:
            result[name] = None
            continue
        used = sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())
        result[name] = round(100 * used / seconds, 1)
    result["machine"] = round(100 * (b.machine_cpu - a.machine_cpu) / seconds, 1)
    # Whatever else ran on the machine meanwhile (other people's tests, say): a noisy run.
    known = sum(result[name] or 0.0 for name in ("server", "generator", "postgres"))
    result["other"] = round(max(0.0, (result["machine"] or 0.0) - known), 1)
    return result


def wait_for_quiet(limit: float, patience: float) -> float:
    """Wait (up to ``patience`` s) until the machine's background load is below ``limit`` %
    of one core, measured over 5 s. Returns the last measurement."""
    deadline = time.monotonic() + patience
    while True:
        began, busy = time.monotonic(), machine_busy_seconds()
        time.sleep(5)
        load = 100 * (machine_busy_seconds() - busy) / (time.monotonic() - began)
        if load <= limit or time.monotonic() >= deadline:
            return round(load, 1)
        log(f"machine busy ({load:.0f}% of a core); waiting for it to calm down")
        time.sleep(10)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "mem_total_gib": round(mem / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def probe_summary(tmp: Path, start: float, end: float) -> dict[str, Any] | None:
    """Server GC pauses and presence flushes (from bench/probe) inside the steady window."""
    files = sorted(tmp.glob("probe.*.jsonl"))
    if not files:
        return None
    events = []
    for path in files:
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
    inside = [e for e in events if start <= e["t"] < end]
    gcs = [e for e in inside if e["kind"] == "gc"]
    flushes = [e for e in inside if e["kind"] == "flush"]
    return {
        "gc_pauses_over_2ms": {
            f"gen{gen}": {
                "count": len(part),
                "max_ms": round(max(e["ms"] for e in part), 1),
                "total_ms": round(sum(e["ms"] for e in part), 1),
            }
            for gen in (0, 1, 2)
            if (part := [e for e in gcs if e["gen"] == gen])
        },
        "gc_pauses_over_50ms": [
            {"at_s": round(e["t"] - start, 2), "gen": e["gen"], "ms": round(e["ms"], 1)}
            for e in gcs
            if e["ms"] > SLOW_REPLY * 1000
        ],
        "presence_flushes": {
            "count": len(flushes),
            "rows": sum(e["rows"] for e in flushes),
            "max_ms": round(max((e["ms"] for e in flushes), default=0.0), 1),
        },
        "gen2_pauses_whole_run_ms": [
            round(e["ms"], 1) for e in events if e["kind"] == "gc" and e["gen"] == 2
        ],
    }


def code_version() -> dict[str, Any]:
    """The commit of the FlowGate code the server will run (where ``flowgate`` imports from,
    so a ``PYTHONPATH`` pointing at another worktree is what is recorded) and its uncommitted
    server changes (read-only git calls)."""
    spec = importlib.util.find_spec("flowgate")
    where = Path(spec.origin).resolve().parent if spec and spec.origin else Path(__file__).parent

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=where, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout

    dirty = git("status", "--porcelain", "--", ".")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip() or None,
        "server_code": str(where),
        "uncommitted_server_files": [line[3:] for line in dirty.splitlines() if line.strip()],
    }


# --- orchestration -----------------------------------------------------------------------------


@dataclass
class Plan:
    procs: int
    addresses: list[tuple[str, ...]]


def plan(args: argparse.Namespace) -> Plan:
    procs = args.procs or max(1, math.ceil(args.agents / AGENTS_PER_WORKER_DEFAULT))
    per_worker = math.ceil(args.agents / procs)
    if per_worker > MAX_SOCKETS_PER_WORKER:
        raise SystemExit(
            f"{per_worker} agents per worker exceeds {MAX_SOCKETS_PER_WORKER}; raise --procs"
        )
    per_proc = args.addresses_per_proc or (1 if args.transport == "ws" else 4)
    if FIRST_SOURCE_OCTET + procs * per_proc > 255:
        raise SystemExit("not enough 127.0.0.x source addresses for this many workers")
    addresses = [
        tuple(f"127.0.0.{FIRST_SOURCE_OCTET + w * per_proc + j}" for j in range(per_proc))
        for w in range(procs)
    ]
    return Plan(procs, addresses)


class Fleet:
    """The worker processes and their control pipes."""

    def __init__(self, args: argparse.Namespace, base_url: str, token: str, layout: Plan) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[multiprocessing.connection.Connection] = []
        self.procs: list[Any] = []
        for w in range(layout.procs):
            parent, child = ctx.Pipe()
            cfg = WorkerConfig(
                worker=w,
                indices=tuple(range(w, args.agents, layout.procs)),
                total_agents=args.agents,
                transport=args.transport,
                base_url=base_url,
                token=token,
                heartbeat=args.heartbeat,
                connect_rate=args.connect_rate,
                source_addresses=layout.addresses[w],
                reply_timeout=args.reply_timeout,
                connect_timeout=args.connect_timeout,
                reconnect=args.reconnect,
                components=args.components,
            )
            proc = ctx.Process(target=worker_main, args=(cfg, child), name=f"bench-worker-{w}")
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def expect(self, kind: str, timeout: float) -> list[Any]:
        """Wait for message ``kind`` from every worker."""
        values: list[Any] = [None] * len(self.pipes)
        pending = set(range(len(self.pipes)))
        deadline = time.monotonic() + timeout
        while pending:
            ready = multiprocessing.connection.wait(
                [self.pipes[i] for i in pending], timeout=max(0.0, deadline - time.monotonic())
            )
            if not ready:
                raise TimeoutError(f"workers {sorted(pending)} sent no {kind!r} in {timeout:.0f}s")
            for conn in ready:
                i = self.pipes.index(conn)  # type: ignore[arg-type]
                got, value = self.pipes[i].recv()
                if got != kind:
                    raise RuntimeError(f"worker {i} sent {got!r}, expected {kind!r}")
                values[i] = value
                pending.discard(i)
        return values

    def send(self, message: tuple[str, Any]) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(message)

    def close(self) -> None:
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join()


def run(args: argparse.Namespace, floor: bool = False) -> dict[str, Any]:
    raise_nofile_limit()
    layout = plan(args)
    code = code_version()  # what the server will run: recorded before it starts
    if args.wait_quiet:
        load = wait_for_quiet(args.quiet_limit, args.wait_quiet)
        log(f"background load before start: {load}% of a core")
    server: Server | FloorServer | None = None
    fleet: Fleet | None = None
    restart: dict[str, Any] | None = None
    try:
        if floor:
            server = FloorServer(args.floor_ws)
            log(f"starting the Python floor server, {server.tmp}")
            server.start()
            base_url, root_pid, pg_name = server.url, server.proc.pid, None  # type: ignore[union-attr]
            token = server.create_token()
        elif args.url:
            base_url, token = args.url.rstrip("/"), args.token
            root_pid, pg_name = args.server_pid, args.pg_database
            if not token:
                raise SystemExit("--url needs --token (a registration token)")
        else:
            server = Server(
                args.server_workers,
                args.database,
                int(args.heartbeat),
                args.probe,
                dict(item.split("=", 1) for item in args.server_env),
            )
            log(f"starting server: {args.database}, {args.server_workers} worker(s), {server.tmp}")
            server.start()
            base_url, root_pid, pg_name = server.url, server.proc.pid, server.pg_name  # type: ignore[union-attr]
            token = server.create_token()

        # /metrics answers from whichever worker accepts the scrape: exact with one worker only.
        use_metrics = args.url is not None or args.server_workers == 1

        def snap() -> Snapshot:
            if server is not None:
                server.check_alive()
            pids = server_pids(root_pid) if root_pid else None
            return Snapshot(
                at=time.monotonic(),
                server_cpu=cpu_seconds(pids) if pids else None,
                generator_cpu=cpu_seconds(fleet.pids) if fleet else {},
                postgres_cpu=cpu_seconds(postgres_pids()) if pg_name else None,
                machine_cpu=machine_busy_seconds(),
                rss_kib=rss_kib(pids) if pids else None,
                pg=pg_counters(pg_name),
                metrics=server_metrics(base_url) if use_metrics else None,
            )

        log(f"spawning {layout.procs} worker process(es); sources {layout.addresses}")
        fleet = Fleet(args, base_url, token, layout)
        fleet.expect("ready", 60)
        quiet = snap()
        time.sleep(2.0)
        idle = snap()
        background = cpu_pct(quiet, idle)
        if (background["other"] or 0) > 20:
            log(f"warning: other processes use {background['other']}% CPU; results will be noisy")
        t0 = time.monotonic() + 0.5
        fleet.send(("start", t0))
        ramp_seconds = args.agents / args.connect_rate
        log(f"connecting {args.agents} {args.transport} agents at {args.connect_rate}/s")
        ramped = fleet.expect("ramped", ramp_seconds + args.connect_timeout + 120)
        connected_ramp = snap()
        connected = sum(c for c, _ in ramped)
        log(f"ramp done in {connected_ramp.at - t0:.1f}s: {connected} connected; settling")
        time.sleep(args.settle)
        start = snap()
        end_at = start.at + args.duration
        fleet.send(("window", (start.at, end_at)))
        log(f"measuring steady state for {args.duration:.0f}s")
        time.sleep(max(0.0, end_at - time.monotonic()))
        end = snap()
        log("collecting results")
        results = fleet.expect("result", args.reply_timeout + 120)
        if args.reconnect:
            assert server is not None  # parse_args refuses --reconnect with --url
            restart = reconnect_storm(args, server, fleet)
        fleet.close()
    finally:
        if fleet is not None:
            fleet.send(("stop", None))
            fleet.close()
        if server is not None:
            server.stop()

    stats = merged(results)
    server_log = server.log_path if server else None
    result = report(
        args, layout, stats, server_log, background, idle, t0, connected_ramp, start, end
    )
    result["code"] = code
    if args.reconnect:
        result["reconnect"] = restart
    if floor:
        result["config"].update(server="floor", database=None, floor_ws=args.floor_ws)
    if isinstance(server, Server) and args.probe:
        result["server_probe"] = probe_summary(server.tmp, start.at, end.at)
    return result


def merged(wires: list[dict[str, Any]]) -> WorkerStats:
    stats = WorkerStats()
    for wire in wires:
        stats.merge_wire(wire)
    return stats


# --- --reconnect: restart the server under the fleet ---------------------------------------------

BATCHED = ("flowgate_opamp_batched_reads_total", "flowgate_opamp_batched_keys_total")


def batched_reads(base_url: str) -> dict[str, float]:
    """The server's coalesced-read counters (flowgate.opamp.loader) from /metrics, by read."""
    import httpx

    values: dict[str, float] = {}
    with contextlib.suppress(httpx.HTTPError):
        text = httpx.get(f"{base_url}/metrics", timeout=10, trust_env=False).text
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name.split("{", 1)[0] in BATCHED:
                kind = "reads" if "reads" in name else "keys"
                read = name.split('read="', 1)[1].split('"', 1)[0]
                values[f"{kind}_{read}"] = float(value)
    return values


def healthy_count(client: Any) -> int | None:
    """Gateways the fleet summary counts healthy (GET /api/v1/gateways), None if unreadable."""
    import httpx

    with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
        response = client.get("/api/v1/gateways", params={"limit": 1})
        if response.status_code == 200:
            return int(response.json()["summary"]["by_health"].get("healthy", 0))
    return None


def admin_client(server: Server) -> Any:
    import httpx

    client = httpx.Client(base_url=server.url, timeout=30, trust_env=False)
    response = client.post(
        "/api/v1/auth/login",
        json={"email": "bench@example.com", "password": server.admin_password},
    )
    response.raise_for_status()
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return client


def attempt_kinds(errors: Counter[str]) -> dict[str, int]:
    """Failed connect attempts by kind: what the spec allows (503/429 + Retry-After,
    UNAVAILABLE + retry_info), the server being down (refused while it restarts), other."""
    kinds: Counter[str] = Counter()
    for text, count in errors.items():
        if not text.startswith("connect:"):
            continue
        if "503" in text:
            kinds["http_503"] += count
        elif "429" in text:
            kinds["http_429"] += count
        elif "UNAVAILABLE" in text:
            kinds["unavailable"] += count
        elif "Refused" in text or "Errno 111" in text or "Connect call failed" in text:
            kinds["server_down"] += count
        else:
            kinds["other"] += count
    return dict(kinds)


def reconnect_storm(args: argparse.Namespace, server: Server, fleet: Fleet) -> dict[str, Any]:
    """Restart the private server under the connected fleet and measure the storm: once the
    server is ready again, every agent reconnects at once with its own OpAMP token (the herd
    the server must absorb; how long the restart itself took is reported apart, because
    agents retrying during it would only spread their arrival over their backoff)."""
    marks: dict[str, Any] = {}

    def stopped() -> None:
        marks["pg"] = pg_counters(server.pg_name)  # the database is quiet now

    log("restarting the server under the fleet")
    t_stop = time.monotonic()
    server.restart(stopped)
    t_ready = time.monotonic()
    fleet.send(("restarting", t_ready))
    log(f"server ready again after {t_ready - t_stop:.1f}s; agents coming back")
    ramped = fleet.expect("ramped", args.reconnect_timeout + args.connect_timeout)
    t_answered = time.monotonic()
    pg_answered = pg_counters(server.pg_name)
    reads = batched_reads(server.url)
    connected = sum(c for c, _ in ramped)
    log(f"{connected} agents back and answered {t_answered - t_ready:.1f}s after ready")
    healthy_at, healthy = None, None
    client = admin_client(server)
    try:
        deadline = t_answered + args.reconnect_timeout
        while time.monotonic() < deadline:
            healthy = healthy_count(client)
            if healthy is not None and healthy >= connected:
                healthy_at = time.monotonic()
                break
            time.sleep(0.5)
    finally:
        client.close()
    fleet.send(("stop", None))
    stats = merged(fleet.expect("reconnect_result", args.reply_timeout + 120))
    upgraded = stats.upgraded_at.summary_ms()
    answered = stats.time_to_connect.summary_ms()

    def since_ready(ms: float | None) -> float | None:
        return None if ms is None else round(ms / 1000, 2)

    db = None
    if marks.get("pg") and pg_answered:
        delta = {k: pg_answered[k] - marks["pg"][k] for k in pg_answered}
        db = {"transactions": delta["xact_commit"] + delta["xact_rollback"], **delta}
    return {
        "agents": connected,
        "agents_failed": stats.failed,
        "server_down_s": round(t_ready - t_stop, 2),
        "seconds_until_all_connected": since_ready(upgraded["max"]),
        "seconds_until_all_answered": since_ready(answered["max"]),
        "seconds_until_all_healthy": round(healthy_at - t_ready, 2) if healthy_at else None,
        "healthy_gateways": healthy,
        "heartbeat_s": args.heartbeat,
        "from_ready_s": {
            "connected_p50": since_ready(upgraded["p50"]),
            "connected_p99": since_ready(upgraded["p99"]),
            "answered_p50": since_ready(answered["p50"]),
            "answered_p90": since_ready(answered["p90"]),
            "answered_p99": since_ready(answered["p99"]),
        },
        "failed_attempts": stats.connect_errors,
        "failed_attempts_by_kind": attempt_kinds(stats.errors),
        "errors": dict(stats.errors),
        "full_state_reply_ms": stats.first_reply.summary_ms(),
        "heartbeat_reply_ms": stats.ramp_latency.summary_ms(),
        "db_during_storm": db,
        "server_batched_reads": reads,
    }


def report(
    args: argparse.Namespace,
    layout: Plan,
    stats: WorkerStats,
    server_log: Path | None,
    background: dict[str, float | None],
    idle: Snapshot,
    t0: float,
    ramped: Snapshot,
    start: Snapshot,
    end: Snapshot,
) -> dict[str, Any]:
    window = end.at - start.at
    ramp_start = dataclasses.replace(idle, at=t0)
    kib_per_agent = None
    if end.rss_kib is not None and idle.rss_kib is not None and stats.connected:
        kib_per_agent = round((end.rss_kib - idle.rss_kib) / stats.connected, 2)
    latency = stats.latency.summary_ms()
    db_steady = db_rates(start, end)
    writes = write_rates(start, end)
    result: dict[str, Any] = {
        "summary": {
            "transport": args.transport,
            "agents_connected": stats.connected,
            "agents_failed": stats.failed,
            "seconds_to_connect_all": round(ramped.at - t0, 1),
            "messages_per_s": round(stats.answered / window, 1),
            "reply_p50_ms": latency["p50"],
            "reply_p99_ms": latency["p99"],
            "server_cpu_pct": cpu_pct(start, end)["server"],
            "server_kib_per_agent": kib_per_agent,
            "db_commits_per_s": db_steady["commits_per_s"] if db_steady else None,
            "db_rows_written_per_s": db_steady["rows_written_per_s"] if db_steady else None,
            "server_flush_statements_per_s": writes["statements_per_s"] if writes else None,
            "server_rows_flushed_per_s": writes["rows_per_s"] if writes else None,
        },
        "config": {
            "agents": args.agents,
            "transport": args.transport,
            "heartbeat_s": args.heartbeat,
            "components_per_agent": args.components,
            "duration_s": args.duration,
            "settle_s": args.settle,
            "connect_rate_per_s": args.connect_rate,
            "procs": layout.procs,
            "source_addresses": [list(a) for a in layout.addresses],
            "server_workers": None if args.url else args.server_workers,
            "server_env": args.server_env,
            "database": None if args.url else args.database,
            "url": args.url,
        },
        "machine": machine(),
        "server_log": str(server_log) if server_log else None,
        "idle_cpu_pct": background,
        "agents": {
            "target": args.agents,
            "connected": stats.connected,
            "failed": stats.failed,
            "lost_during_run": stats.lost,
            "errors": dict(stats.errors),
        },
        "connect_phase": {
            "seconds": round(ramped.at - t0, 2),
            "agents_per_s": round(stats.connected / (ramped.at - t0), 1),
            "failed_attempts": stats.connect_errors,
            "time_to_connect_ms": stats.time_to_connect.summary_ms(),
            "ws_handshake_ms": stats.connect.summary_ms() if args.transport == "ws" else None,
            "full_state_reply_ms": stats.first_reply.summary_ms(),
            "heartbeat_reply_ms": stats.ramp_latency.summary_ms(),
            "cpu_pct": cpu_pct(ramp_start, ramped),
            "db": db_rates(ramp_start, ramped),
            "server_writes": write_rates(ramp_start, ramped),
        },
        "steady": {
            "seconds": round(window, 2),
            "expected_per_s": round(stats.connected / args.heartbeat, 1),
            "sent_per_s": round(stats.sent / window, 1),
            "answered_per_s": round(stats.answered / window, 1),
            "unanswered": stats.sent - stats.answered,
            "reply_ms": latency,
            "lateness_ms": stats.lateness.summary_ms(),
            "full_state_requested": stats.full_state_requested,
            "error_responses": stats.error_responses,
            "slow_replies_by_second": {str(k): v for k, v in sorted(stats.slow_by_second.items())},
            "cpu_pct": cpu_pct(start, end),
            "db": db_steady,
            "server_writes": writes,
        },
        "server_memory": {
            "rss_idle_kib": idle.rss_kib,
            "rss_after_connect_kib": start.rss_kib,
            "rss_end_kib": end.rss_kib,
            "kib_per_agent": kib_per_agent,
        },
    }
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Simulate N OpAMP agents against FlowGate and print one JSON result.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--transport", choices=("ws", "http"), default="ws")
    p.add_argument("--heartbeat", type=float, default=30.0, help="seconds between heartbeats")
    p.add_argument(
        "--duration", type=float, default=120.0, help="steady-state window after the ramp (s)"
    )
    p.add_argument("--settle", type=float, default=10.0, help="pause between ramp and window (s)")
    p.add_argument("--connect-rate", type=float, default=500.0, help="new agents per second")
    p.add_argument("--procs", type=int, default=0, help="worker processes (0: 1 per 5k agents)")
    p.add_argument(
        "--addresses-per-proc",
        type=int,
        default=0,
        help="127.0.0.x source addresses per worker (0: 1 for ws, 4 for http)",
    )
    p.add_argument("--reply-timeout", type=float, default=10.0)
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=300.0,
        help="give up on an agent this long after its scheduled connect (retrying meanwhile)",
    )
    p.add_argument("--server-workers", type=int, default=1, help="flowgate serve --workers")
    p.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="FLOWGATE_X=VALUE",
        help="extra setting for the private server (repeatable)",
    )
    p.add_argument("--url", help="target a running server (http://host:port) instead")
    p.add_argument("--token", help="registration token for --url")
    p.add_argument("--server-pid", type=int, help="with --url: server pid for CPU/RSS")
    p.add_argument("--pg-database", help="with --url: PostgreSQL database for write counts")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="wait up to this many seconds for other processes to go quiet before starting",
    )
    p.add_argument("--quiet-limit", type=float, default=15.0, help="%% of one core; see above")
    p.add_argument(
        "--probe",
        action="store_true",
        help="record the server's GC pauses and flushes (bench/probe/sitecustomize.py)",
    )
    p.add_argument(
        "--floor",
        action="store_true",
        help="then run the same agents against the Python floor (bench/opamp_floor.py) and "
        "report FlowGate's CPU per message and memory per agent as ratios to it",
    )
    p.add_argument(
        "--floor-ws",
        help="uvicorn --ws implementation of the floor (default: the one flowgate serve uses)",
    )
    p.add_argument(
        "--components",
        type=int,
        default=0,
        metavar="N",
        help="every agent reports the same map of N available components in its full state "
        "(one Collector build's), as Collectors with the OpAMP extension do",
    )
    p.add_argument("--output", type=Path, help="also write the JSON result to this file")
    p.add_argument(
        "--reconnect",
        action="store_true",
        help="agents take their offered OpAMP token; after the window the server restarts and "
        "the storm of known agents coming back is measured (section 'reconnect')",
    )
    p.add_argument(
        "--reconnect-timeout",
        type=float,
        default=180.0,
        help="--reconnect: give up waiting for all agents to be back and healthy after this (s)",
    )
    args = p.parse_args(argv)
    if args.reconnect and args.url:
        p.error("--reconnect restarts the private server; it cannot be used with --url")
    if args.reconnect and args.floor:
        p.error("--reconnect and --floor are separate runs (the floor cannot restart)")
    if args.agents < 1 or args.connect_rate <= 0 or args.heartbeat <= 0:
        p.error("--agents, --connect-rate and --heartbeat must be positive")
    if any("=" not in item or not item.startswith("FLOWGATE_") for item in args.server_env):
        p.error("--server-env takes FLOWGATE_NAME=VALUE")
    if args.duration < 2 * args.heartbeat:
        log(f"warning: --duration {args.duration}s covers fewer than 2 heartbeat rounds")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    if args.floor:
        result = with_floor(result, run(args, floor=True))
        log(f"versus the floor: {json.dumps(result['vs_floor'])}")
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    print(text, flush=True)


if __name__ == "__main__":
    main()

"""Deployment fan-out: from the API call to every agent applied, for N WebSocket agents.

Seeds N gateways with OpAMP tokens straight into a fresh PostgreSQL (or SQLite) database, starts
``flowgate serve`` on it, connects N OpAMP WebSocket agents (spread over worker processes) that
apply every remote config they receive and report APPLIED, then creates one template version and
one all-at-once deployment to all of them and measures:

- ``api_ms``: the ``POST /api/v1/deployments`` call (one transaction for N gateways);
- ``pushed_s``: until the last agent received the config;
- ``applied_s``: until the deployment's ``counts.applied`` reached N (what the API reports);
- ``cpu_s``: CPU seconds the server, the agent processes, PostgreSQL and the machine used
  in that window (``cores_busy``: how many of the cores that kept busy on average).

Prints one JSON object (and writes it to ``--output FILE`` when given).

    python bench/deploy_fanout.py --agents 1000
    python bench/deploy_fanout.py --agents 10000 --database postgres
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import platform
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from opamp_load import (
    code_version,
    cpu_seconds,
    machine_busy_seconds,
    postgres_pids,
    server_pids,
)

ADMIN = "bench@example.com"
HEARTBEAT_SECONDS = 30.0
CAPS = 0x1 | 0x2 | 0x4 | 0x800 | 0x1000 | 0x2000
CONFIG = (
    "receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\n"
    "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def components_state(count: int) -> dict[str, Any]:
    """An OpAMP state whose ``available_components`` lists ``count`` components, as one build
    of a Collector reports them (``otlp`` and ``debug``, which the bench's config uses, among
    them); every seeded gateway gets the same map and hash, like a fleet of one build."""
    kinds = ["receivers", "processors", "exporters", "extensions", "connectors"]
    names: dict[str, list[str]] = {kind: [] for kind in kinds}
    names["receivers"].append("otlp")
    names["exporters"].append("debug")
    for i in range(max(0, count - 2)):
        kind = kinds[i % len(kinds)]
        names[kind].append(f"{kind[:-1]}{i:03d}")
    components = {
        kind: {
            "metadata": {},
            "components": {
                name: {
                    "metadata": {
                        "code.namespace": "github.com/open-telemetry/opentelemetry-collector"
                        f"-contrib/{kind[:-1]}/{name}{kind[:-1]}",
                        "version": "v0.135.0",
                    },
                    "components": {},
                }
                for name in items
            },
        }
        for kind, items in names.items()
    }
    digest = hashlib.sha256(json.dumps(components, sort_keys=True).encode()).hexdigest()
    return {"available_components": {"hash": digest, "components": components}}


async def seed(
    url: str, org_name: str, n: int, secret: str, components: int = 0
) -> list[tuple[str, str]]:
    """Insert N gateways with an OpAMP token each (and, with ``components``, the OpAMP state
    of agents that reported that many available components); returns (gateway id, token)
    pairs."""
    from sqlalchemy import insert, select

    import flowgate.models  # noqa: F401  (every table, for the foreign keys)
    from flowgate.core.db import Database, utcnow
    from flowgate.core.security import digest, opamp_token
    from flowgate.gateways.models import Gateway, GatewayStatus
    from flowgate.orgs.models import Organization

    db = Database(url)
    async with db.sessionmaker() as session:
        org_id = await session.scalar(select(Organization.id).where(Organization.name == org_name))
        assert org_id is not None
        rows, pairs = [], []
        state = components_state(components) if components else None
        for i in range(n):
            gid = uuid.uuid4()
            token = opamp_token(gid, org_id, 30, secret)
            pairs.append((str(gid), token))
            rows.append(
                {
                    "id": gid,
                    "org_id": org_id,
                    "instance_id": f"bench-{i:06d}",
                    "name": f"bench-{i:06d}",
                    "status": GatewayStatus.registered,
                    "opamp_token": digest(token),
                    "transport": "opamp-ws",
                    "extra_metadata": {},
                    "labels": {"bench": "yes"},
                    "opamp_state": state,
                    "components_hash": state["available_components"]["hash"] if state else None,
                    "created_at": utcnow(),
                    "updated_at": utcnow(),
                }
            )
        for start in range(0, n, 2000):
            await session.execute(insert(Gateway), rows[start : start + 2000])
        await session.commit()
    await db.dispose()
    return pairs


def agent_worker(
    ws_url: str, tokens: list[str], ready: Any, results: Any, client: str
) -> None:  # pragma: no cover - runs in a child process
    import lean_agent
    import uvloop

    from flowgate.opamp.proto import anyvalue_pb2, opamp_pb2

    desc = opamp_pb2.AgentDescription(
        identifying_attributes=[
            anyvalue_pb2.KeyValue(
                key="service.name", value=anyvalue_pb2.AnyValue(string_value="bench-agent")
            )
        ]
    )

    async def one(token: str, pushed: list[float]) -> None:
        run = lean_session if client == "lean" else session
        for attempt in range(30):  # a connect storm gets 503s and timeouts: come back later
            try:
                await run(token, pushed)
                return
            except Exception:
                await asyncio.sleep(min(10.0, 0.5 * (attempt + 1)))

    async def lean_session(token: str, pushed: list[float]) -> None:
        """The same agent as :func:`session` on :mod:`lean_agent`'s hand-rolled client."""
        loop = asyncio.get_running_loop()
        uid = uuid.uuid4().bytes
        seq = 0

        def message(**fields: Any) -> bytes:
            nonlocal seq
            msg = opamp_pb2.AgentToServer(
                instance_uid=uid, sequence_num=seq, capabilities=CAPS, **fields
            )
            seq += 1
            return b"\x00" + msg.SerializeToString()

        host, _, rest = ws_url.removeprefix("ws://").partition(":")
        port, _, path = rest.partition("/")
        async with asyncio.timeout(120):
            ws = await lean_agent.connect(
                host, int(port), "/" + path, {"Authorization": f"Bearer {token}"}
            )
        answered: asyncio.Future[None] = loop.create_future()
        beat: asyncio.TimerHandle | None = None

        def on_message(data: bytes) -> None:
            msg = opamp_pb2.ServerToAgent()
            msg.ParseFromString(data[1:])
            if not answered.done():
                if msg.HasField("error_response"):
                    answered.set_exception(RuntimeError(msg.error_response.error_message))
                else:
                    answered.set_result(None)
                return
            if msg.HasField("remote_config"):
                pushed.append(time.time())
                status = opamp_pb2.RemoteConfigStatus(
                    last_remote_config_hash=msg.remote_config.config_hash,
                    status=opamp_pb2.RemoteConfigStatuses_APPLIED,
                )
                ws.send(message(remote_config_status=status))

        def heartbeat() -> None:
            nonlocal beat
            ws.send(message())
            beat = loop.call_later(HEARTBEAT_SECONDS, heartbeat)

        ws.on_message = on_message
        try:
            ws.send(message(agent_description=desc, health=opamp_pb2.ComponentHealth(healthy=True)))
            async with asyncio.timeout(120):
                await asyncio.wait({answered, ws.closed}, return_when=asyncio.FIRST_COMPLETED)
            if not answered.done():
                raise ConnectionError("closed before the first reply")
            answered.result()
            ready.put(1)
            beat = loop.call_later(random.uniform(0, HEARTBEAT_SECONDS), heartbeat)
            await ws.closed
            raise ConnectionError("closed")
        finally:
            if beat is not None:
                beat.cancel()
            ws.abort()

    async def session(token: str, pushed: list[float]) -> None:
        from websockets.asyncio.client import connect

        uid = uuid.uuid4().bytes
        seq = [0]  # shared by the heartbeats and the status reports: one sequence

        def message(**fields: Any) -> bytes:
            msg = opamp_pb2.AgentToServer(
                instance_uid=uid, sequence_num=seq[0], capabilities=CAPS, **fields
            )
            seq[0] += 1
            return b"\x00" + msg.SerializeToString()

        async with connect(
            ws_url,
            additional_headers={"Authorization": f"Bearer {token}"},
            compression=None,
            open_timeout=120,
            ping_interval=None,
        ) as ws:
            await ws.send(
                message(agent_description=desc, health=opamp_pb2.ComponentHealth(healthy=True))
            )
            reply = opamp_pb2.ServerToAgent()
            reply.ParseFromString((await ws.recv())[1:])
            if reply.HasField("error_response"):
                raise RuntimeError(reply.error_response.error_message)
            ready.put(1)

            async def heartbeat() -> None:
                # As a real agent does: without it the server's idle timeout (heartbeat
                # interval x missed heartbeats) closes sockets during a slow connect phase.
                await asyncio.sleep(random.uniform(0, HEARTBEAT_SECONDS))
                while True:
                    await ws.send(message())
                    await asyncio.sleep(HEARTBEAT_SECONDS)

            beating = asyncio.create_task(heartbeat())
            try:
                while True:
                    msg = opamp_pb2.ServerToAgent()
                    msg.ParseFromString((await ws.recv())[1:])
                    if not msg.HasField("remote_config"):
                        continue
                    pushed.append(time.time())
                    status = opamp_pb2.RemoteConfigStatus(
                        last_remote_config_hash=msg.remote_config.config_hash,
                        status=opamp_pb2.RemoteConfigStatuses_APPLIED,
                    )
                    await ws.send(message(remote_config_status=status))
            finally:
                beating.cancel()

    async def main() -> None:
        pushed: list[float] = []
        tasks = []
        for i, token in enumerate(tokens):
            tasks.append(asyncio.create_task(one(token, pushed)))
            if i % 200 == 199:
                await asyncio.sleep(0.2)
        while True:
            await asyncio.sleep(0.2)
            if len(pushed) >= len(tokens):
                break
        results.put(max(pushed))
        # Stay connected (the parent kills this process): agents leaving at once would
        # measure a disconnect storm, not the rollout.
        await asyncio.gather(*tasks)

    uvloop.run(main())


def _profiler(pid: int, output: str) -> subprocess.Popen[bytes]:
    """py-spy recording ``pid`` as collapsed stacks into ``output`` until SIGINT."""
    profiler = subprocess.Popen(
        [
            *("py-spy", "record", "--pid", str(pid), "--format", "raw"),
            *("--rate", "250", "--output", output, "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # py-spy attaches
    return profiler


def _stop(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(timeout=60)


def api_only(http: httpx.Client, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    """Time ``args.api_only`` deployments of new versions to every seeded gateway, no agents."""
    config = http.post("/api/v1/configs", json={"name": "fanout"}).json()
    profiler = _profiler(pid, args.profile) if args.profile else None
    calls = []
    for i in range(args.api_only):
        body = CONFIG + f"# revision {i}\n"
        version = http.post(f"/api/v1/configs/{config['id']}/versions", json={"config_yaml": body})
        assert version.status_code == 201, version.text
        started = time.monotonic()
        created = http.post(
            "/api/v1/deployments", json={"config_id": config["id"], "target": {"all": True}}
        )
        calls.append(round((time.monotonic() - started) * 1000, 1))
        assert created.status_code == 201, created.text
    _stop(profiler)
    return {
        "bench": "deploy_fanout_api",
        "gateways": args.agents,
        "database": args.database,
        "components_per_gateway": args.components,
        "api_ms": calls,
        "api_ms_median": sorted(calls)[len(calls) // 2],
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _cpu_used(
    groups: dict[str, list[int]], before: dict[str, dict[int, float]]
) -> dict[str, float]:
    used = {}
    for name, pids in groups.items():
        now = cpu_seconds(pids)
        used[name] = round(sum(now[pid] - before[name].get(pid, 0.0) for pid in now), 2)
    return used


def report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Print the JSON result, and write it to ``--output`` too."""
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--client",
        choices=["lean", "websockets"],
        default="lean",
        help="the agents' WebSocket client: lean (bench/lean_agent.py) or the websockets "
        "library's, which costs the generator about twice the CPU, taken from the server on a "
        "small machine",
    )
    parser.add_argument(
        "--server-workers",
        type=int,
        default=1,
        help="flowgate serve --workers N (more than one fans out through Redis, "
        "FLOWGATE_BENCH_REDIS_URL or redis://127.0.0.1:6379/0)",
    )
    parser.add_argument(
        "--api-only",
        type=int,
        default=0,
        metavar="REPEAT",
        help="connect no agents: time REPEAT deployment calls to the N seeded gateways (the API's "
        "own cost, profiled with --profile)",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="record the server with py-spy from the API call to all applied (collapsed stacks)",
    )
    parser.add_argument(
        "--components",
        type=int,
        default=0,
        metavar="N",
        help="seed every gateway's OpAMP state with N available components (one build's map), "
        "as Collectors with ReportsAvailableComponents have; with --api-only, what checking "
        "a deployment against them costs",
    )
    parser.add_argument("--output", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args()
    if args.profile and args.server_workers > 1:
        parser.error("--profile records one server process: use it with --server-workers 1")

    tmp = Path(tempfile.mkdtemp(prefix="flowgate-fanout-"))
    port = free_port()
    code = code_version()  # what the server will run: recorded before it starts
    secret = secrets.token_urlsafe(48)
    password = secrets.token_urlsafe(12)
    dbname = None
    if args.database == "postgres":
        dbname = f"flowgate_fanout_{uuid.uuid4().hex[:8]}"
        subprocess.run(
            [
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-qc",
                f'CREATE DATABASE "{dbname}"',
            ],
            check=True,
        )
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{dbname}"
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'flowgate.db'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")},
        "FLOWGATE_PORT": str(port),
        "FLOWGATE_DATA_DIR": str(tmp),
        "FLOWGATE_DATABASE_URL": url,
        "FLOWGATE_SECRET_KEY": secret,
        "FLOWGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "FLOWGATE_BOOTSTRAP_ADMIN_EMAIL": ADMIN,
        "FLOWGATE_BOOTSTRAP_ADMIN_PASSWORD": password,
        "FLOWGATE_LOG_LEVEL": "WARNING",
        "FLOWGATE_OPAMP_DB_CONCURRENCY": "20",
        "FLOWGATE_OPAMP_MAX_QUEUED": "100000",
        "FLOWGATE_OPAMP_MAX_MESSAGES_PER_SECOND": "100000",
    }
    if args.server_workers > 1:  # several workers need the bus
        env["FLOWGATE_REDIS_URL"] = os.environ.get(
            "FLOWGATE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"
        )
    server = subprocess.Popen(
        [sys.executable, "-m", "flowgate", "serve", "--workers", str(args.server_workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "server.log", "wb"),  # noqa: SIM115
    )
    base = f"http://127.0.0.1:{port}"
    procs: list[multiprocessing.Process] = []
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        http = httpx.Client(base_url=base, timeout=120)
        login = http.post("/api/v1/auth/login", json={"email": ADMIN, "password": password})
        http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        pairs = asyncio.run(seed(url, "default", args.agents, secret, args.components))
        if args.api_only:
            report(args, {**api_only(http, server.pid, args), "code": code})
            return
        ctx = multiprocessing.get_context("spawn")
        ready, results = ctx.Queue(), ctx.Queue()
        share = [pairs[i :: args.processes] for i in range(args.processes)]
        for part in share:
            p = ctx.Process(
                target=agent_worker,
                args=(
                    f"ws://127.0.0.1:{port}/v1/opamp",
                    [t for _, t in part],
                    ready,
                    results,
                    args.client,
                ),
            )
            p.start()
            procs.append(p)
        connect_started = time.monotonic()
        for _ in range(args.agents):
            ready.get(timeout=args.timeout)
        connect_s = time.monotonic() - connect_started
        config = http.post("/api/v1/configs", json={"name": "fanout"}).json()
        version = http.post(
            f"/api/v1/configs/{config['id']}/versions", json={"config_yaml": CONFIG}
        )
        assert version.status_code == 201, version.text
        profiler = _profiler(server.pid, args.profile) if args.profile else None
        groups = {
            "server": server_pids(server.pid),
            "agents": [p.pid for p in procs if p.pid is not None],
            "postgres": postgres_pids(),
            "bench": [os.getpid()],
        }
        cpu_before = {name: cpu_seconds(pids) for name, pids in groups.items()}
        busy_before = machine_busy_seconds()
        t0 = time.time()
        started = time.monotonic()
        created = http.post(
            "/api/v1/deployments",
            json={"config_id": config["id"], "target": {"all": True}},
        )
        api_ms = (time.monotonic() - started) * 1000
        assert created.status_code == 201, created.text
        did = created.json()["id"]
        applied_s = None
        while time.monotonic() - started < args.timeout:
            counts = http.get(f"/api/v1/deployments/{did}").json()["counts"]
            if counts["applied"] >= args.agents:
                applied_s = time.monotonic() - started
                break
            time.sleep(0.05)
        window = time.monotonic() - started
        cpu = _cpu_used(groups, cpu_before)
        cpu["machine"] = round(machine_busy_seconds() - busy_before, 2)
        _stop(profiler)
        pushed_s = max(results.get(timeout=args.timeout) for _ in procs) - t0
        report(
            args,
            {
                "bench": "deploy_fanout",
                "agents": args.agents,
                "components_per_gateway": args.components,
                "database": args.database,
                "server_workers": args.server_workers,
                "client": args.client,
                "connect_s": round(connect_s, 2),
                "api_ms": round(api_ms, 1),
                "pushed_s": round(pushed_s, 3),
                "applied_s": round(applied_s, 3) if applied_s is not None else None,
                # CPU seconds each side used from the API call to all applied, and how
                # many of the machine's cores that kept busy on average.
                "cpu_s": cpu,
                "cores_busy": round(cpu["machine"] / window, 2),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                },
                "code": code,
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
    finally:
        for p in procs:
            p.kill()
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a hung shutdown is a bug: say so, leave nothing
            print("server did not stop within 60 s of SIGTERM; killed", file=sys.stderr)
            server.kill()
            server.wait()
        if dbname:
            subprocess.run(
                [
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-qc",
                    f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)',
                ],
                check=False,
            )


if __name__ == "__main__":
    main()

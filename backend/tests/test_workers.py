"""``flowgate serve --workers N``: several processes on one port, each with its own agents,
sharing deployments and events through Redis.

Which worker holds which agent is read from the outside: the established TCP connections on the
server's port that each worker process owns (``/proc/<pid>/fd`` against ``/proc/net/tcp``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path

import pytest

from flowgate.opamp.proto import opamp_pb2
from tests.conftest import database_for
from tests.support.api import new_org, superuser_client
from tests.support.polling import wait_for
from tests.support.server import LiveServer, drop_pg_database
from tests.support.ws_agent import WsAgent

REDIS = os.environ.get("FLOWGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WORKERS = 2
APPLIED = opamp_pb2.RemoteConfigStatuses_APPLIED
CONFIG = (
    "receivers:\n  otlp:\n    protocols:\n      http: {}\nexporters:\n  debug: {}\n"
    "service:\n  pipelines:\n    logs:\n      receivers: [otlp]\n      exporters: [debug]\n"
)

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")


def _workers(pid: int) -> list[int]:
    """The server's worker processes (its children, but multiprocessing's resource tracker)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(FileNotFoundError):
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
                if b"resource_tracker" not in cmdline:
                    found.append(int(child))
    return found


def _established_inodes(port: int) -> set[str]:
    """Socket inodes of established TCP connections whose local port is ``port``."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def connections_per_worker(server: LiveServer) -> dict[int, int]:
    assert server.proc is not None
    established = _established_inodes(server.port)
    counts: dict[int, int] = {}
    for pid in _workers(server.proc.pid):
        held = 0
        with contextlib.suppress(FileNotFoundError, PermissionError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
                    if match and match.group(1) in established:
                        held += 1
        counts[pid] = held
    return counts


async def test_agents_on_every_worker_get_a_deployment_made_on_any(tmp_path: Path) -> None:
    url, pg_name = database_for("postgres", tmp_path)
    server = LiveServer(
        data_dir=tmp_path / "data",
        database_url=url,
        extra_env={"FLOWGATE_REDIS_URL": REDIS},
        args=("--workers", str(WORKERS)),
    )
    agents: list[WsAgent] = []
    try:
        server.launch().wait_ready(timeout=90)
        wait_for(
            lambda: server.full_log().count("Application startup complete.") == WORKERS,
            timeout=90,
        )
        org = new_org(server, superuser_client(server))
        token = org.registration_token(max_uses=None)
        gateways = []
        # The kernel hands each new connection to whichever worker accepts first: connect
        # agents until every worker holds some (a handful is almost always enough).
        for _ in range(60):
            gw = await asyncio.to_thread(org.register, token=token)
            agent = await WsAgent(server.ws_url + "/v1/opamp", gw["opamp_token"]).connect()
            reply = await agent.request(agent.full_state())
            assert not reply.HasField("error_response"), reply
            agents.append(agent)
            gateways.append(gw)
            per_worker = connections_per_worker(server)
            if len(agents) >= 4 and len(per_worker) == WORKERS and all(per_worker.values()):
                break
        per_worker = connections_per_worker(server)
        assert len(per_worker) == WORKERS and all(per_worker.values()), per_worker

        config = org.admin.post("/api/v1/configs", params={"org_id": org.id}, json={"name": "w"})
        assert config.status_code == 201, config.text
        cid = config.json()["id"]
        version = org.admin.post(
            f"/api/v1/configs/{cid}/versions",
            params={"org_id": org.id},
            json={"config_yaml": CONFIG},
        )
        assert version.status_code == 201, version.text
        deployment = org.admin.post(
            "/api/v1/deployments",
            params={"org_id": org.id},
            json={"config_id": cid, "target": {"all": True}},
        )
        assert deployment.status_code == 201, deployment.text
        did = deployment.json()["id"]
        # Whichever worker took the API call, every agent (so agents on the other worker too)
        # is pushed the version, over its own socket.
        for agent in agents:
            pushed = await agent.recv(timeout=15)
            while not pushed.HasField("remote_config"):
                pushed = await agent.recv(timeout=15)
            assert pushed.remote_config.config.config_map[""].body.decode() == CONFIG
            await agent.report_config(pushed.remote_config.config_hash, APPLIED)
        done = wait_for(
            lambda: (
                (d := org.get(f"/api/v1/deployments/{did}").json())["state"] == "completed" and d
            ),
            timeout=30,
        )
        assert done["counts"]["applied"] == len(agents)
    finally:
        for agent in agents:
            with contextlib.suppress(Exception):
                await agent.close()
        server.stop()
        if pg_name:
            drop_pg_database(pg_name)

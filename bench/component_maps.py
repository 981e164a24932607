"""Server memory for the component maps of N agents of one Collector build, in process.

Each agent reports the same ``AvailableComponents`` (``--components`` entries, one hash), as a
fleet of one build does, through ``OpAMPAgents.handle`` (no sockets, no database: the agents
are registered in memory first). Measured twice with ``tracemalloc``: all agents in one
organisation, which share one map, and each agent in an organisation of its own, where no map
can be shared (what every agent cost before maps were shared). Prints one JSON object.

    python bench/component_maps.py --agents 2000 --components 250
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import tempfile
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

from opamp_load import code_version

CAPS = 0x1FF


def report(uid: bytes, count: int) -> Any:
    from flowgate.opamp.proto import opamp_pb2

    msg = opamp_pb2.AgentToServer(instance_uid=uid, sequence_num=1, capabilities=CAPS)
    msg.available_components.hash = b"\x5a" * 32
    kinds = ["receivers", "processors", "exporters", "extensions", "connectors"]
    for i in range(count):
        kind = kinds[i % len(kinds)]
        name = f"{kind[:-1]}{i:03d}"
        entry = msg.available_components.components[kind].sub_component_map[name]
        where = f"github.com/open-telemetry/opentelemetry-collector-contrib/{kind[:-1]}/{name}"
        entry.metadata.add(key="code.namespace").value.string_value = where
        entry.metadata.add(key="version").value.string_value = "v0.135.0"
    return msg


async def measure(agents_n: int, components: int, shared_org: bool) -> dict[str, float]:
    from flowgate.core.settings import Settings
    from flowgate.opamp import core
    from flowgate.opamp.agents import Agent, Connection
    from flowgate.opamp.auth import Credential
    from flowgate.runtime import build_runtime

    agents = build_runtime(Settings(data_dir=Path(tempfile.mkdtemp()), secret_key="k" * 48)).agents
    org = uuid.uuid4()
    msgs, creds, registered = [], [], []
    for _ in range(agents_n):
        uid = uuid.uuid4().bytes
        org_id = org if shared_org else uuid.uuid4()
        agent = Agent(
            uid=uid,
            gateway_id=uuid.uuid4(),
            org_id=org_id,
            guard="g",
            credential="registration",
            state=core.AgentState(instance_uid=uid, sequence_num=0, capabilities=CAPS),
            transport="opamp-ws",
        )
        agents.agents[uid] = agent
        registered.append(agent)
        msgs.append(report(uid, components))
        creds.append(Credential(kind="registration", org_id=org_id))
    conn = Connection(send=None, close=None)  # type: ignore[arg-type]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for msg, cred in zip(msgs, creds, strict=True):
        await agents.handle(msg, cred, "opamp-ws", "ws://bench/v1/opamp", conn)
    agents.store._presence._pending.clear()  # the flush's buffer is not hot state
    msgs.clear()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {"kib_per_agent": round((after - before) / agents_n / 1024, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--components", type=int, default=250)
    args = parser.parse_args()
    shared = asyncio.run(measure(args.agents, args.components, shared_org=True))
    unshared = asyncio.run(measure(args.agents, args.components, shared_org=False))
    print(
        json.dumps(
            {
                "bench": "component_maps",
                "code": code_version(),
                "agents": args.agents,
                "components": args.components,
                "one_organisation_shared": shared,
                "an_organisation_each_unshared": unshared,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

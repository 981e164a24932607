"""Server CPU per OpAMP enrolment, in this process: batched (the enroller) against one by one.

Runs FlowGate's own enrolment code (``AgentStore``) against a fresh PostgreSQL (or SQLite)
database, without sockets, so the number is the enrolment itself (lookups, the token's use
count, the INSERT, the audit row, the commit), not the WebSocket handshake around it. Both
modes run in one process on one database, so compare their ratio, not the absolute values,
on a busy machine:

- ``single``: each agent enrolled in its own unit of work, ``--concurrency`` at a time (the
  path every enrolment took before batching, and the one a re-registration still takes);
- ``batch``: all agents submitted at once to ``AgentStore.load``, which coalesces them.

    PYTHONPATH=backend/src python bench/enrol_batch.py --agents 2000 --database postgres

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from flowgate.core.db import Database
from flowgate.core.migrate import upgrade
from flowgate.core.settings import Settings
from flowgate.core.uow import unit_of_work_factory
from flowgate.gateways.presence import Presence
from flowgate.opamp.auth import Admission, Credential
from flowgate.opamp.proto import anyvalue_pb2, opamp_pb2
from flowgate.opamp.store import AgentStore, Enrolling
from flowgate.orgs.service import create_org
from flowgate.tokens.service import create_token


def description(name: str) -> opamp_pb2.AgentToServer:
    def kv(key: str, value: str) -> anyvalue_pb2.KeyValue:
        return anyvalue_pb2.KeyValue(key=key, value=anyvalue_pb2.AnyValue(string_value=value))

    uid = uuid.uuid4()
    desc = opamp_pb2.AgentDescription(
        identifying_attributes=[
            kv("service.name", "io.opentelemetry.collector"),
            kv("service.instance.id", str(uid)),
        ],
        non_identifying_attributes=[kv("host.name", name)],
    )
    return opamp_pb2.AgentToServer(instance_uid=uid.bytes, capabilities=1, agent_description=desc)


async def database_url(kind: str, tmp: Path) -> tuple[str, str | None]:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp / 'bench.db'}", None
    import asyncpg

    name = f"flowgate_enrolbench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", name


async def drop(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def run_mode(
    store: AgentStore, cred: Credential, mode: str, agents: int, concurrency: int
) -> dict[str, Any]:
    items = [
        Enrolling(msg.instance_uid, msg, cred, "opamp-ws", "127.0.0.1")
        for msg in (description(f"{mode}-{i:05d}") for i in range(agents))
    ]
    gate = asyncio.Semaphore(concurrency)
    batches_before = store.enroller.batches

    async def single(item: Enrolling) -> Any:
        async with gate:
            return await store.enrol_one(item)  # the one-by-one path, as before batching

    async def batched(item: Enrolling) -> Any:
        return await store.load(item.uid, item.msg, item.cred, item.transport)

    cpu, wall = time.process_time(), time.perf_counter()
    enrol = single if mode == "single" else batched
    loaded = await asyncio.gather(*(enrol(item) for item in items))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert all(entry is not None for entry in loaded), "every agent enrolled"
    return {
        "agents": agents,
        "seconds": round(wall, 3),
        "enrolments_per_s": round(agents / wall, 1),
        "cpu_ms_per_enrolment": round(1000 * cpu / agents, 3),
        "batches": store.enroller.batches - batches_before if mode == "batch" else None,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="flowgate-enrolbench-") as tmp:
        url, pg_name = await database_url(args.database, Path(tmp))
        try:
            await asyncio.to_thread(upgrade, url)
            os.environ["FLOWGATE_DATABASE_URL"] = url
            settings = Settings(secret_key="x" * 64, database_url=url, data_dir=Path(tmp))
            db = Database(url)
            unit_of_work = unit_of_work_factory(db.sessionmaker)
            presence = Presence(unit_of_work, 3600, 60, 300)
            admission = Admission(settings.opamp_db_concurrency, settings.opamp_max_queued)
            store = AgentStore(settings, unit_of_work, presence, admission)
            async with unit_of_work() as uow:
                org = await create_org(uow.session, "bench")
                issued = await create_token(uow.session, org.id, "fleet", 1, max_uses=None)
            cred = Credential("registration", org.id, token_id=issued.record.id)
            out: dict[str, Any] = {"database": args.database, "agents": args.agents}
            for mode in args.modes.split(","):
                out[mode] = await run_mode(store, cred, mode, args.agents, args.concurrency)
            if "single" in out and "batch" in out:
                out["cpu_ratio_single_to_batch"] = round(
                    out["single"]["cpu_ms_per_enrolment"] / out["batch"]["cpu_ms_per_enrolment"], 2
                )
            await db.dispose()
            return out
        finally:
            if pg_name:
                await drop(pg_name)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--agents", type=int, default=2000)
    p.add_argument("--database", choices=("sqlite", "postgres"), default="postgres")
    p.add_argument(
        "--concurrency", type=int, default=6, help="single mode: FLOWGATE_OPAMP_DB_CONCURRENCY"
    )
    p.add_argument("--modes", default="single,batch", help="comma-separated: single, batch")
    print(json.dumps(asyncio.run(main(p.parse_args())), indent=2))

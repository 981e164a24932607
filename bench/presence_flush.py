"""Presence flush: the server's CPU and the wall time per gateway row a flush writes.

Creates a fresh database (PostgreSQL by default; SQLite with ``--database sqlite``), brings its
schema up to date with ``flowgate db upgrade``, seeds N gateways with OpAMP tokens
(``deploy_fanout.seed``), then ROUNDS times buffers one heartbeat per gateway in a
:class:`~flowgate.gateways.presence.Presence` (last_seen, status active, transport: what every
OpAMP heartbeat records) and times ``flush()``. The first round also moves every gateway from
registered to active (health history rows); the rest are plain refreshes. Prints one JSON
object; ``cpu_us_per_row`` is this process's CPU (the server's share of a flush), the wall
time includes PostgreSQL's.

    python bench/presence_flush.py --rows 2000 --rounds 6
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from deploy_fanout import seed  # this directory: run as a script


async def measure(url: str, rows: int, rounds: int) -> list[dict[str, float]]:
    from flowgate.core.db import Database, utcnow
    from flowgate.core.security import digest
    from flowgate.core.uow import unit_of_work_factory
    from flowgate.gateways.models import GatewayStatus
    from flowgate.gateways.presence import Presence

    pairs = await seed(url, "bench", rows, secrets.token_urlsafe(48))
    db = Database(url)
    presence = Presence(unit_of_work_factory(db.sessionmaker), 3600.0)
    guards = [(uuid.UUID(gid), digest(token)) for gid, token in pairs]
    out = []
    try:
        for _ in range(rounds):
            for gateway_id, guard in guards:
                presence.record(
                    gateway_id,
                    guard,
                    last_seen=utcnow(),
                    status=GatewayStatus.active,
                    transport="opamp-ws",
                )
            wall, cpu = time.perf_counter(), time.process_time()
            written = await presence.flush()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert written == rows, written
            out.append({"cpu_us_per_row": 1e6 * cpu / rows, "wall_us_per_row": 1e6 * wall / rows})
    finally:
        await db.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="flowgate-flush-"))
    dbname = f"flowgate_flush_{uuid.uuid4().hex[:8]}"
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc"]
    if args.database == "postgres":
        subprocess.run([*psql, f'CREATE DATABASE "{dbname}"'], check=True)
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{dbname}"
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'flowgate.db'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")},
        "FLOWGATE_DATABASE_URL": url,
        "FLOWGATE_DATA_DIR": str(tmp),
        "FLOWGATE_SECRET_KEY": secrets.token_urlsafe(48),
    }
    flowgate = [sys.executable, "-m", "flowgate"]
    try:
        subprocess.run([*flowgate, "db", "upgrade"], env=env, check=True, capture_output=True)
        subprocess.run(
            [*flowgate, "orgs", "create", "bench"], env=env, check=True, capture_output=True
        )
        os.environ.update(env)
        rounds = asyncio.run(measure(url, args.rows, args.rounds))
    finally:
        if args.database == "postgres":
            subprocess.run([*psql, f'DROP DATABASE IF EXISTS "{dbname}"'], check=False)
    refresh = rounds[1:] or rounds
    result: dict[str, Any] = {
        "bench": "presence_flush",
        "database": args.database,
        "rows": args.rows,
        "first_round": {k: round(v, 1) for k, v in rounds[0].items()},
        "refresh_median": {
            key: round(statistics.median(r[key] for r in refresh), 1) for key in rounds[0]
        },
        "rounds": [{k: round(v, 1) for k, v in r.items()} for r in rounds],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

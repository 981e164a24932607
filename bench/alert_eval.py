"""Alert evaluation at fleet scale: one evaluator run over N gateways (default 100,000).

Seeds N gateways with the health mix of bench/gateway_list.py (80 % healthy, 10 % warning, 5 %
unhealthy, 5 % offline) and a ``region`` label each into a fresh PostgreSQL (or SQLite)
database, adds four rules (gateways unhealthy for 5 minutes, all and ``region=eu``; more than
10 % of the fleet unhealthy, all and ``region=eu``) with a webhook channel, and times the
evaluator's run in process: the first (which raises the alerts and queues their notifications)
and then steady runs (nothing changes). Prints one JSON object.

    python bench/alert_eval.py --gateways 100000 --database postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway_list import pg_exec, rows

from flowgate.alerts import leases, signing
from flowgate.alerts.evaluator import LEASE_NAME, evaluate
from flowgate.alerts.models import AlertRule, NotificationChannel, RuleKind
from flowgate.core.db import Database
from flowgate.core.migrate import upgrade
from flowgate.core.settings import Settings
from flowgate.orgs.models import Organization


async def seed(db: Database, n: int) -> uuid.UUID:
    org_id = uuid.uuid4()
    async with db.sessionmaker() as session:
        session.add(Organization(id=org_id, name=f"bench-{org_id.hex[:8]}"))
        await session.commit()
    gateways = rows(org_id, n)
    if db.dialect == "postgresql":
        import asyncpg

        dsn = db.url.replace("postgresql+asyncpg://", "postgresql://", 1)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.copy_records_to_table(
                "gateways",
                records=[
                    (*r[:4], r[4], r[5], r[6], r[6], "{}", _labels(r), "{}", "{}", "rest")
                    for r in gateways
                ],
                columns=[
                    "id",
                    "instance_id",
                    "org_id",
                    "name",
                    "status",
                    "last_seen",
                    "created_at",
                    "updated_at",
                    "extra_metadata",
                    "labels",
                    "agent_labels",
                    "manual_labels",
                    "transport",
                ],
            )
            await conn.copy_records_to_table(
                "gateway_labels",
                records=[(r[0], "region", org_id, _region(r)) for r in gateways],
                columns=["gateway_id", "key", "org_id", "value"],
            )
            await conn.execute("ANALYZE")
        finally:
            await conn.close()
    else:
        import sqlite3

        path = db.url.split("///", 1)[1]
        conn3 = sqlite3.connect(path)
        fmt = "%Y-%m-%d %H:%M:%S.%f"
        conn3.executemany(
            "INSERT INTO gateways (id, instance_id, org_id, name, status, last_seen, created_at,"
            " updated_at, extra_metadata, labels, agent_labels, manual_labels, transport)"
            " VALUES (?,?,?,?,?,?,?,?,'{}',?,'{}','{}','rest')",
            [
                (
                    r[0].hex,
                    r[1],
                    org_id.hex,
                    r[3],
                    r[4],
                    r[5].strftime(fmt),
                    r[6].strftime(fmt),
                    r[6].strftime(fmt),
                    json.dumps({"region": _region(r)}),
                )
                for r in gateways
            ],
        )
        conn3.executemany(
            "INSERT INTO gateway_labels (gateway_id, key, org_id, value) VALUES (?,?,?,?)",
            [(r[0].hex, "region", org_id.hex, _region(r)) for r in gateways],
        )
        conn3.execute("ANALYZE")
        conn3.commit()
        conn3.close()
    return org_id


def _region(row: tuple[Any, ...]) -> str:
    return str(row[3]).split("-")[1]  # edge-<region>-<n>


def _labels(row: tuple[Any, ...]) -> str:
    return json.dumps({"region": _region(row)})


async def add_rules(db: Database, org_id: uuid.UUID) -> None:
    now = datetime.now(UTC)
    channel_id = uuid.uuid4()
    async with db.sessionmaker() as session:
        session.add(
            NotificationChannel(
                id=channel_id,
                org_id=org_id,
                name="bench",
                url="http://127.0.0.1:9/hook",
                secret_salt=signing.new_salt(),
                created_at=now,
                updated_at=now,
            )
        )
        specs: list[tuple[RuleKind, str | None, dict[str, Any]]] = [
            (RuleKind.gateway_unhealthy, None, {"for_minutes": 5}),
            (RuleKind.gateway_unhealthy, "region=eu", {"for_minutes": 5}),
            (RuleKind.fleet_unhealthy_percent, None, {"percent": 10}),
            (RuleKind.fleet_unhealthy_percent, "region=eu", {"percent": 5}),
        ]
        for kind, selector, params in specs:
            session.add(
                AlertRule(
                    org_id=org_id,
                    name=f"{kind.value} {selector or 'all'}",
                    kind=kind,
                    selector=selector,
                    params=params,
                    channel_ids=[str(channel_id)],
                    enabled=True,
                    created_at=now,
                    updated_at=now,
                )
            )
        await session.commit()


async def run_once(db: Database, settings: Settings) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    async with db.sessionmaker() as session:
        now = datetime.now(UTC)
        assert await leases.claim(session, LEASE_NAME, "bench", now, 60)
        result = await evaluate(session, settings, now)
        await session.commit()
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, {
        "fired": result.fired,
        "resolved": result.resolved,
        "queued": result.queued,
    }


async def bench(url: str, n: int, repeat: int, tmp: Path) -> dict[str, Any]:
    settings = Settings(environment="test", data_dir=tmp, database_url=url)
    db = Database(url)
    try:
        started = time.perf_counter()
        org_id = await seed(db, n)
        seed_seconds = time.perf_counter() - started
        await add_rules(db, org_id)
        first_ms, first = await run_once(db, settings)
        steady = []
        for _ in range(repeat):
            ms, _ = await run_once(db, settings)
            steady.append(ms)
        steady.sort()
        return {
            "seed_seconds": round(seed_seconds, 1),
            "first_run_ms": round(first_ms, 1),
            "first_run": first,
            "steady_p50_ms": round(statistics.median(steady), 1),
            "steady_max_ms": round(steady[-1], 1),
        }
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=100_000)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fg-bench-alerts-"))
    dbname = None
    if args.database == "postgres":
        dbname = f"flowgate_bench_{uuid.uuid4().hex[:10]}"
        asyncio.run(pg_exec(f'CREATE DATABASE "{dbname}"'))
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{dbname}"
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    try:
        upgrade(url)
        measured = asyncio.run(bench(url, args.gateways, args.repeat, tmp))
    finally:
        if dbname:
            asyncio.run(pg_exec(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
    print(
        json.dumps(
            {
                "bench": "alert_eval",
                "gateways": args.gateways,
                "database": args.database,
                "rules": 4,
                "python": platform.python_version(),
                **measured,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""Gateway list API at fleet scale: keyset pages, filters and summary counts over N gateways.

Seeds N gateways (default 100,000) straight into a fresh PostgreSQL (or SQLite) database with
realistic statuses and last_seen ages (and the stored health the rule gives them; the database
triggers record their creation in the health history and the per-organisation counts), starts
``flowgate serve`` on it, waits for its health sweep to fold the counts, and times the REST
calls a UI makes, the health history endpoints, and one health sweep (run in this process on
the same database). Prints one JSON object.

    PYTHONPATH=backend/src python bench/gateway_list.py --gateways 100000 --database postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ADMIN = "bench@example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def pg_exec(sql: str, dbname: str = "postgres") -> None:
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database=dbname)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def health_of(status: str, age: float) -> str:
    """FlowGate's rule (flowgate.gateways.health) at the default thresholds."""
    if status in ("inactive", "error"):
        return "offline"
    if status == "active" and age <= 60:
        return "healthy"
    return "warning" if age <= 300 else "unhealthy"


def rows(org_id: uuid.UUID, n: int) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    rnd = random.Random(7)
    out = []
    for i in range(n):
        kind = rnd.random()
        if kind < 0.80:
            status, age = "active", rnd.uniform(0, 45)  # healthy
        elif kind < 0.90:
            status, age = "active", rnd.uniform(61, 290)  # warning
        elif kind < 0.95:
            status, age = "active", rnd.uniform(400, 86_400)  # unhealthy
        else:
            status, age = "inactive", rnd.uniform(400, 86_400)  # offline
        out.append(
            (
                uuid.uuid4(),
                f"gw-{i:06d}",
                org_id,
                f"edge-{rnd.choice(['eu', 'us', 'ap'])}-{i:06d}",
                status,
                now - timedelta(seconds=age),
                now - timedelta(days=30),
                health_of(status, age),
                now,
            )
        )
    return out


async def seed_postgres(dbname: str, org_name: str, n: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database=dbname)
    try:
        org_id = await conn.fetchval("SELECT id FROM organizations WHERE name = $1", org_name)
        await conn.copy_records_to_table(
            "gateways",
            records=[
                (
                    *r[:4],
                    r[4],
                    r[5],
                    r[6],
                    r[6],
                    "{}",
                    "{}",
                    "{}",
                    "{}",
                    "rest",
                    r[7],
                    r[8],
                    "seeded",
                )
                for r in rows(org_id, n)
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
                "health",
                "health_changed_at",
                "health_reason",
            ],
        )
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def seed_sqlite(path: Path, org_name: str, n: int) -> None:
    import sqlite3

    db = sqlite3.connect(path)
    (org_hex,) = db.execute("SELECT id FROM organizations WHERE name = ?", (org_name,)).fetchone()
    org_id = uuid.UUID(hex=org_hex) if len(org_hex) == 32 else uuid.UUID(org_hex)
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    db.executemany(
        "INSERT INTO gateways (id, instance_id, org_id, name, status, last_seen, created_at,"
        " updated_at, extra_metadata, labels, agent_labels, manual_labels, transport, health,"
        " health_changed_at, health_reason)"
        " VALUES (?,?,?,?,?,?,?,?,'{}','{}','{}','{}','rest',?,?,'seeded')",
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
                r[7],
                r[8].strftime(fmt),
            )
            for r in rows(org_id, n)
        ],
    )
    db.execute("ANALYZE")
    db.commit()
    db.close()


async def wait_folded(url: str, gateways: int) -> float:
    """Seconds until the server's health sweep folded the seed's count deltas (below 1% of the
    fleet: the seeded ages keep crossing the thresholds, and each transition adds two)."""
    from sqlalchemy import text

    from flowgate.core.db import create_engine

    engine = create_engine(url)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < 120:
            async with engine.connect() as conn:
                left = await conn.scalar(text("SELECT COUNT(*) FROM gateway_count_deltas"))
            if (left or 0) <= gateways // 100:
                break
            await asyncio.sleep(0.5)
    finally:
        await engine.dispose()
    return round(time.perf_counter() - started, 1)


async def time_sweeps(url: str, repeat: int) -> dict[str, Any]:
    """One health sweep (claim, out-of-step UPDATE, prune, fold counts) timed here, on the same
    database, while the server's own sweeps run too (so some of these find the work done)."""
    from flowgate.core.db import Database
    from flowgate.core.uow import unit_of_work_factory
    from flowgate.gateways.sweep import HealthSweep

    db = Database(url)
    sweep = HealthSweep(unit_of_work_factory(db.sessionmaker), 5.0, 60, 300, 30)
    samples, changed = [], 0
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            result = await sweep.run_once(force=True)
            samples.append((time.perf_counter() - started) * 1000)
            changed += len(result.changes) if result else 0
            await asyncio.sleep(0.05)
    finally:
        await db.dispose()
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "max_ms": round(samples[-1], 2),
        "transitions": changed,
    }


def timed(client: httpx.Client, path: str, params: dict[str, Any], repeat: int) -> dict[str, Any]:
    samples = []
    last: dict[str, Any] = {}
    for _ in range(repeat):
        started = time.perf_counter()
        resp = client.get(path, params=params)
        samples.append((time.perf_counter() - started) * 1000)
        resp.raise_for_status()
        last = resp.json()
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[max(0, int(len(samples) * 0.99) - 1)], 2),
        "items": len(last.get("items", [])),
        "summary_total": last.get("summary", {}).get("total"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=100_000)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--summary-cache-seconds",
        default="0",
        help="FLOWGATE_SUMMARY_CACHE_SECONDS for the server (0 = count on every request)",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="fg-bench-list-"))
    port = free_port()
    password = secrets.token_urlsafe(12)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
    env.update(
        FLOWGATE_DATA_DIR=str(tmp),
        FLOWGATE_PORT=str(port),
        FLOWGATE_SECRET_KEY=secrets.token_urlsafe(48),
        FLOWGATE_BOOTSTRAP_ADMIN_EMAIL=ADMIN,
        FLOWGATE_BOOTSTRAP_ADMIN_PASSWORD=password,
        FLOWGATE_SUMMARY_CACHE_SECONDS=args.summary_cache_seconds,
        FLOWGATE_LOG_LEVEL="WARNING",
    )
    dbname = None
    if args.database == "postgres":
        dbname = f"flowgate_bench_{uuid.uuid4().hex[:10]}"
        asyncio.run(pg_exec(f'CREATE DATABASE "{dbname}"'))
        env["FLOWGATE_DATABASE_URL"] = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{dbname}"
    flowgate = [sys.executable, "-m", "flowgate"]
    server = None
    try:
        subprocess.run([*flowgate, "orgs", "list"], env=env, check=True, capture_output=True)
        server = subprocess.Popen([*flowgate, "serve"], env=env, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        started = time.perf_counter()
        if dbname:
            asyncio.run(seed_postgres(dbname, "default", args.gateways))
        else:
            seed_sqlite(tmp / "flowgate.db", "default", args.gateways)
        seed_seconds = time.perf_counter() - started
        db_url = env.get("FLOWGATE_DATABASE_URL") or f"sqlite+aiosqlite:///{tmp / 'flowgate.db'}"
        folded = asyncio.run(wait_folded(db_url, args.gateways))
        sweep = asyncio.run(time_sweeps(db_url, args.repeat))
        token = httpx.post(
            base + "/api/v1/auth/login", json={"email": ADMIN, "password": password}
        ).json()["access_token"]
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
            org_id = c.get("/api/v1/auth/me").json()["organizations"][0]["id"]
            q = {"org_id": org_id, "limit": 100}
            results = {
                # The noise floor: what any request costs on this machine right now.
                "healthz_baseline": timed(c, "/healthz", {}, args.repeat),
                "first_page": timed(c, "/api/v1/gateways", q, args.repeat),
                "status_inactive": timed(
                    c, "/api/v1/gateways", {**q, "status": "inactive"}, args.repeat
                ),
                "health_warning": timed(
                    c, "/api/v1/gateways", {**q, "health": "warning"}, args.repeat
                ),
                "name_contains": timed(
                    c, "/api/v1/gateways", {**q, "name": "edge-eu-0999"}, args.repeat
                ),
            }
            some = c.get("/api/v1/gateways", params=q).json()["items"][0]["id"]
            results["gateway_health_history"] = timed(
                c, f"/api/v1/gateways/{some}/health/history", {"org_id": org_id}, args.repeat
            )
            since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
            results["fleet_health_history_1h_1m"] = timed(
                c,
                "/api/v1/fleet/health-history",
                {"org_id": org_id, "since": since, "step": "1m"},
                args.repeat,
            )
            # Walk deep with the cursor: page 500 costs what page 1 costs.
            cursor, pages, walk = None, 0, []
            while pages < 500:
                t0 = time.perf_counter()
                page = c.get(
                    "/api/v1/gateways", params={**q, **({"cursor": cursor} if cursor else {})}
                ).json()
                walk.append((time.perf_counter() - t0) * 1000)
                pages += 1
                cursor = page["next_cursor"]
                if not cursor:
                    break
            results["cursor_walk"] = {
                "pages": pages,
                "first_10_p50_ms": round(statistics.median(walk[:10]), 2),
                "last_10_p50_ms": round(statistics.median(walk[-10:]), 2),
            }
            summary = page["summary"]
        print(
            json.dumps(
                {
                    "benchmark": "gateway_list",
                    "database": args.database,
                    "gateways": args.gateways,
                    "seed_seconds": round(seed_seconds, 1),
                    "summary_cache_seconds": float(args.summary_cache_seconds),
                    "summary": summary,
                    "counts_folded_after_seconds": folded,
                    "health_sweep": sweep,
                    "results": results,
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                },
                indent=2,
            )
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=15)
        if dbname:
            asyncio.run(pg_exec(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))


if __name__ == "__main__":
    main()

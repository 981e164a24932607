"""Label selectors at fleet scale: ``count?selector=`` and a list page with a selector.

Seeds N gateways (default 100,000, one organisation, about five labels each) straight into a
fresh PostgreSQL (or SQLite) database, starts ``flowgate serve`` on it and times the REST calls
the UI and deployments make. With ``--strategies`` it also times, in SQL on the same rows, the
two ways of indexing labels that were considered: the ``gateway_labels`` table FlowGate uses
(B-tree on org_id, key, value, gateway_id) and a GIN index on the ``labels`` jsonb column with
``@>`` / ``?`` (PostgreSQL only). Prints one JSON object.

    python bench/label_selectors.py --gateways 100000 --database postgres --strategies
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import shutil
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
from opamp_load import code_version

ADMIN = "bench@example.com"
REGIONS = ["eu-west", "eu-central", "us-east", "us-west", "ap-south", "ap-east", "sa-east", "af"]

#: (name, selector): broad and narrow, every operator.
SELECTORS = [
    ("eq_60pct", "env=prod"),
    ("eq_and_ne", "env=prod,region!=eu-west"),
    ("in_and_notin", "region in (us-east,us-west),env notin (dev)"),
    ("exists_70pct", "tier"),
    ("not_exists_95pct", "!canary"),
    ("narrow_eq_exists", "team=team-07,canary"),
    ("narrow_four_terms", "env=staging,region=ap-east,tier=edge,!canary"),
    ("prefixed_key", "example.com/owner in (owner-1,owner-2)"),
    ("design_doc_example", "env=prod,region!=eu,tier"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def labels_for(rnd: random.Random) -> dict[str, str]:
    roll = rnd.random()
    labels = {
        "env": "prod" if roll < 0.6 else "staging" if roll < 0.9 else "dev",
        "region": rnd.choice(REGIONS),
        "team": f"team-{rnd.randrange(50):02d}",
    }
    if rnd.random() < 0.7:
        labels["tier"] = rnd.choice(["edge", "core", "ingest"])
    if rnd.random() < 0.05:
        labels["canary"] = "true"
    if rnd.random() < 0.2:
        labels["example.com/owner"] = f"owner-{rnd.randrange(10)}"
    return labels


def rows(org_id: uuid.UUID, n: int) -> list[tuple[Any, ...]]:
    """(id, instance_id, org_id, name, status, last_seen, created_at, labels)."""
    now = datetime.now(UTC)
    rnd = random.Random(11)
    out = []
    for i in range(n):
        out.append(
            (
                uuid.uuid4(),
                f"gw-{i:06d}",
                org_id,
                f"edge-{rnd.choice(['eu', 'us', 'ap'])}-{i:06d}",
                "active",
                now - timedelta(seconds=rnd.uniform(0, 45)),
                now - timedelta(days=30),
                labels_for(rnd),
            )
        )
    return out


GATEWAY_COLUMNS = [
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
]


async def pg_exec(sql: str, dbname: str = "postgres") -> None:
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database=dbname)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def seed_postgres(dbname: str, org_name: str, n: int) -> uuid.UUID:
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database=dbname)
    try:
        org_id: uuid.UUID = await conn.fetchval(
            "SELECT id FROM organizations WHERE name = $1", org_name
        )
        data = rows(org_id, n)
        await conn.copy_records_to_table(
            "gateways",
            records=[
                (*r[:6], r[6], r[6], "{}", json.dumps(r[7]), json.dumps(r[7]), "{}", "rest")
                for r in data
            ],
            columns=GATEWAY_COLUMNS,
        )
        await conn.copy_records_to_table(
            "gateway_labels",
            records=[(r[0], org_id, k, v) for r in data for k, v in r[7].items()],
            columns=["gateway_id", "org_id", "key", "value"],
        )
        await conn.execute("VACUUM ANALYZE gateways")
        await conn.execute("VACUUM ANALYZE gateway_labels")
        return org_id
    finally:
        await conn.close()


def at_rest(dbname: str | None, tmp: Path) -> tuple[int, int]:
    """(health transitions recorded, count deltas not folded yet)."""
    sql = (
        "SELECT (SELECT count(*) FROM gateway_health_history),"
        " (SELECT count(*) FROM gateway_count_deltas)"
    )
    if dbname:

        async def fetch() -> tuple[int, int]:
            import asyncpg

            conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database=dbname)
            try:
                row = await conn.fetchrow(sql)
                return int(row[0]), int(row[1])
            finally:
                await conn.close()

        return asyncio.run(fetch())
    import sqlite3

    db = sqlite3.connect(tmp / "flowgate.db")
    try:
        history, deltas = db.execute(sql).fetchone()
        return int(history), int(deltas)
    finally:
        db.close()


def seed_sqlite(path: Path, org_name: str, n: int) -> uuid.UUID:
    import sqlite3

    db = sqlite3.connect(path)
    (org_hex,) = db.execute("SELECT id FROM organizations WHERE name = ?", (org_name,)).fetchone()
    org_id = uuid.UUID(hex=org_hex) if len(org_hex) == 32 else uuid.UUID(org_hex)
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    data = rows(org_id, n)
    db.executemany(
        f"INSERT INTO gateways ({', '.join(GATEWAY_COLUMNS)}) "
        "VALUES (?,?,?,?,?,?,?,?,'{}',?,?,'{}','rest')",
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
                json.dumps(r[7]),
                json.dumps(r[7]),
            )
            for r in data
        ],
    )
    db.executemany(
        "INSERT INTO gateway_labels (gateway_id, org_id, key, value) VALUES (?,?,?,?)",
        [(r[0].hex, org_id.hex, k, v) for r in data for k, v in r[7].items()],
    )
    db.execute("ANALYZE")
    db.commit()
    db.close()
    return org_id


def summarise(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p99_ms": round(samples[max(0, int(len(samples) * 0.99) - 1)], 2),
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
    out: dict[str, Any] = summarise(samples)
    if "count" in last:
        out["count"] = last["count"]
    if "items" in last:
        out["items"] = len(last["items"])
    return out


# -- the two indexing strategies, in SQL ----------------------------------------------------------


def jsonb_condition(selector_text: str) -> tuple[str, list[Any]]:
    """The selector as jsonb operators over ``gateways.labels`` (the GIN alternative)."""
    from flowgate.gateways.selectors import Op, parse

    parts, params = [], []
    for req in parse(selector_text).requirements:
        if req.op in (Op.EXISTS, Op.DOES_NOT_EXIST):
            params.append(req.key)
            term = f"labels ? ${len(params) + 1}"
        else:
            alternatives = []
            for value in req.values:
                params.append(json.dumps({req.key: value}))
                alternatives.append(f"labels @> ${len(params) + 1}::jsonb")
            term = "(" + " OR ".join(alternatives) + ")"
        parts.append(term if req.op in (Op.EQUALS, Op.IN, Op.EXISTS) else f"NOT {term}")
    return " AND ".join(parts), params


async def strategies(dbname: str, org_id: uuid.UUID, repeat: int) -> dict[str, Any]:
    """Time count and first-page queries for both strategies (server-side time, EXPLAIN
    ANALYZE), with the GIN index built only for this comparison and dropped afterwards."""
    import asyncpg
    from sqlalchemy import select
    from sqlalchemy.dialects import postgresql

    from flowgate.core.db import POSTGRES_SESSION_SETTINGS
    from flowgate.gateways import repository
    from flowgate.gateways.models import Gateway
    from flowgate.gateways.selectors import parse

    # With FlowGate's own session settings, so the SQL timings are its plans.
    conn = await asyncpg.connect(
        host="127.0.0.1",
        user="postgres",
        database=dbname,
        server_settings=POSTGRES_SESSION_SETTINGS,
    )
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]

    async def server_ms(sql: str, params: list[Any]) -> float:
        plan = await conn.fetchval(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}", *params)
        return float(json.loads(plan)[0]["Execution Time"])

    async def sample(sql: str, params: list[Any]) -> dict[str, float]:
        await server_ms(sql, params)  # warm the cache
        return summarise([await server_ms(sql, params) for _ in range(repeat)])

    def asyncpg_sql(stmt: Any) -> tuple[str, list[Any]]:
        c = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        names = list(c.params)
        sql = str(c)
        for i, name in enumerate(names, start=1):
            sql = sql.replace(f"%({name})s", f"${i}")
        return sql, [c.params[n] for n in names]

    try:
        out: dict[str, Any] = {"label_table": {}, "gin_jsonb": {}}
        for name, text in SELECTORS:
            selector = parse(text)
            count_sql, count_params = asyncpg_sql(repository.count_statement(org_id, selector))
            page_sql, page_params = asyncpg_sql(
                select(Gateway.id)
                .where(Gateway.org_id == org_id, selector.to_sql(Gateway.id, org_id))
                .order_by(Gateway.name, Gateway.id)
                .limit(101)
            )
            out["label_table"][name] = {
                "count": await sample(count_sql, count_params),
                "page": await sample(page_sql, page_params),
                "matches": await conn.fetchval(count_sql, *count_params),
            }
        await conn.execute("CREATE INDEX bench_gin_labels ON gateways USING gin (labels)")
        await conn.execute("ANALYZE gateways")
        for name, text in SELECTORS:
            cond, params = jsonb_condition(text)
            base = [org_id, *params]
            count_sql = f"SELECT count(*) FROM gateways WHERE org_id = $1 AND {cond}"
            page_sql = (
                f"SELECT id FROM gateways WHERE org_id = $1 AND {cond} ORDER BY name, id LIMIT 101"
            )
            out["gin_jsonb"][name] = {
                "count": await sample(count_sql, base),
                "page": await sample(page_sql, base),
                "matches": await conn.fetchval(count_sql, *base),
            }
        await conn.execute("DROP INDEX bench_gin_labels")
        sizes = await conn.fetch(
            "SELECT relname, pg_relation_size(oid) AS bytes FROM pg_class WHERE relname IN "
            "('gateway_labels', 'ix_gateway_labels_org_id_key_value', 'pk_gateway_labels')"
        )
        out["label_table_bytes"] = {r["relname"]: r["bytes"] for r in sizes}
        return out
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=100_000)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--strategies",
        action="store_true",
        help="also time label table vs GIN jsonb in SQL (PostgreSQL only)",
    )
    args = parser.parse_args()

    code = code_version()  # what the server will run
    tmp = Path(tempfile.mkdtemp(prefix="fg-bench-selectors-"))
    port = free_port()
    password = secrets.token_urlsafe(12)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
    env.update(
        FLOWGATE_DATA_DIR=str(tmp),
        FLOWGATE_PORT=str(port),
        FLOWGATE_SECRET_KEY=secrets.token_urlsafe(48),
        FLOWGATE_BOOTSTRAP_ADMIN_EMAIL=ADMIN,
        FLOWGATE_BOOTSTRAP_ADMIN_PASSWORD=password,
        # The list's fleet summary is a separate grouped count (see bench/gateway_list.py);
        # cache it so the list timings show the selector's cost.
        FLOWGATE_SUMMARY_CACHE_SECONDS="600",
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
        started = time.perf_counter()  # the server created the organisation; seed it
        if dbname:
            org_id = asyncio.run(seed_postgres(dbname, "default", args.gateways))
        else:
            org_id = seed_sqlite(tmp / "flowgate.db", "default", args.gateways)
        seed_seconds = time.perf_counter() - started
        # The health sweep now reconciles the seeded rows (a transition and two count deltas
        # each). Time the fleet at rest, as a running fleet would be: no transition for longer
        # than a sweep interval and the deltas folded.
        settled = time.perf_counter()
        last = (-1, -1)
        while time.perf_counter() - settled < 180:
            now = at_rest(dbname, tmp)
            if now[0] == last[0] and now[1] <= args.gateways // 100:
                break
            last = now
            time.sleep(6.0)
        settle_seconds = time.perf_counter() - settled
        if dbname:
            # What autovacuum does within a minute or two: the reconciliation left every
            # gateway row and every folded delta dead, and scans would read them all.
            asyncio.run(
                pg_exec(
                    "VACUUM ANALYZE gateways, gateway_labels, gateway_counts, gateway_count_deltas",
                    dbname,
                )
            )
        token = httpx.post(
            base + "/api/v1/auth/login", json={"email": ADMIN, "password": password}
        ).json()["access_token"]
        results: dict[str, Any] = {}
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
            q = {"org_id": str(org_id)}
            c.get("/api/v1/gateways", params=q).raise_for_status()  # warm the summary cache
            for name, text in SELECTORS:
                results[name] = {
                    "selector": text,
                    "count": timed(
                        c, "/api/v1/gateways/count", {**q, "selector": text}, args.repeat
                    ),
                    "list_page": timed(
                        c, "/api/v1/gateways", {**q, "selector": text, "limit": 100}, args.repeat
                    ),
                }
            results["no_selector"] = {
                "count": timed(c, "/api/v1/gateways/count", q, args.repeat),
                "list_page": timed(c, "/api/v1/gateways", {**q, "limit": 100}, args.repeat),
            }
        report: dict[str, Any] = {
            "benchmark": "selectors",
            "code": code,
            "database": args.database,
            "gateways": args.gateways,
            "seed_seconds": round(seed_seconds, 1),
            "settle_seconds": round(settle_seconds, 1),
            "http": results,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        }
        if args.strategies and dbname:
            report["sql_server_time"] = asyncio.run(strategies(dbname, org_id, args.repeat))
        print(json.dumps(report, indent=2))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=15)
        if dbname:
            asyncio.run(pg_exec(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""``/metrics`` at fleet scale: scrape time with N gateways, and what the fleet gauges cost.

Seeds N gateways (default 100,000; the same rows as ``bench/gateway_list.py``) into a fresh
PostgreSQL (or SQLite) database, starts ``flowgate serve`` on it with a metrics token, waits for
the background fleet gauges to count them all, then times scrapes (the whole text, parsed by
``prometheus_client``'s parser to check it). Also reports how long one computation of the fleet
gauges took (the one grouped query, ``flowgate_fleet_gauges_duration_seconds``), which the
server runs once per ``FLOWGATE_METRICS_FLEET_SECONDS`` whatever the scrape rate. Prints JSON.

    python bench/metrics_scrape.py --gateways 100000 --database postgres
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

import httpx
from gateway_list import ADMIN, free_port, pg_exec, seed_postgres, seed_sqlite
from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=100_000)
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--fleet-seconds", default="1", help="FLOWGATE_METRICS_FLEET_SECONDS")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="fg-bench-metrics-"))
    port = free_port()
    token = secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
    env.update(
        FLOWGATE_DATA_DIR=str(tmp),
        FLOWGATE_PORT=str(port),
        FLOWGATE_SECRET_KEY=secrets.token_urlsafe(48),
        FLOWGATE_BOOTSTRAP_ADMIN_EMAIL=ADMIN,
        FLOWGATE_BOOTSTRAP_ADMIN_PASSWORD=secrets.token_urlsafe(12),
        FLOWGATE_METRICS_TOKEN=token,
        FLOWGATE_METRICS_FLEET_SECONDS=args.fleet_seconds,
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
        for _ in range(300):  # the server makes org "default" as it starts
            try:
                if httpx.get(base + "/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        if dbname:
            asyncio.run(seed_postgres(dbname, "default", args.gateways))
        else:
            seed_sqlite(tmp / "flowgate.db", "default", args.gateways)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            deadline = time.monotonic() + 120
            counted = 0.0
            while time.monotonic() < deadline:
                try:
                    got = samples(c.get("/metrics").text)
                except httpx.HTTPError:
                    time.sleep(0.2)
                    continue
                counted = sum(v for (n, _), v in got.items() if n == "flowgate_gateways")
                if counted >= args.gateways:
                    break
                time.sleep(0.2)
            assert counted == args.gateways, f"fleet gauges count {counted}"
            durations, sizes = [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                resp = c.get("/metrics")
                durations.append((time.perf_counter() - started) * 1000)
                resp.raise_for_status()
                sizes.append(len(resp.content))
            parsed = samples(resp.text)
            baseline = []  # the same server's cheapest answer, for the machine's own noise
            for _ in range(args.repeat):
                started = time.perf_counter()
                c.get("/healthz").raise_for_status()
                baseline.append((time.perf_counter() - started) * 1000)
            baseline.sort()
            gauge_seconds = [parsed[("flowgate_fleet_gauges_duration_seconds", frozenset())]]
            for _ in range(5):  # a few more background computations
                time.sleep(float(args.fleet_seconds) + 0.2)
                got = samples(c.get("/metrics").text)
                gauge_seconds.append(got[("flowgate_fleet_gauges_duration_seconds", frozenset())])
        durations.sort()
        print(
            json.dumps(
                {
                    "benchmark": "metrics_scrape",
                    "database": args.database,
                    "gateways": args.gateways,
                    "scrapes": args.repeat,
                    "scrape_p50_ms": round(statistics.median(durations), 2),
                    "scrape_p99_ms": round(durations[max(0, int(len(durations) * 0.99) - 1)], 2),
                    "scrape_max_ms": round(durations[-1], 2),
                    "body_bytes": sizes[-1],
                    "healthz_p50_ms": round(statistics.median(baseline), 2),
                    "healthz_p99_ms": round(baseline[max(0, int(len(baseline) * 0.99) - 1)], 2),
                    "fleet_gauges_compute_ms": [round(s * 1000, 1) for s in gauge_seconds],
                    "fleet_seconds": float(args.fleet_seconds),
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

"""Starting FlowGate safely: concurrent starts, supported multi-process set-ups, clear refusals.

Several servers on one database are correct only when every one of them uses Redis (the bus
that carries config pushes and revocations between processes). With Redis any number may start
at the same moment; without it exactly one serves and the others refuse with one line.
"""

from __future__ import annotations

import json
import logging
import os
import pty
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from flowgate.core.logging import JsonFormatter, TextFormatter
from tests.conftest import database_for
from tests.support.db import query
from tests.support.polling import wait_for
from tests.support.server import LiveServer, free_port, pg_available

REDIS = os.environ.get("FLOWGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BUSY = "another FlowGate server is using this database"
BUSY_WITHOUT_REDIS = "another FlowGate server without FLOWGATE_REDIS_URL is using this database"
BANNER = "Admin password (shown once)"
STARTUP_FAILURE = 3


@pytest.fixture
def database(backend: str, tmp_path: Path) -> Iterator[str | None]:
    """A fresh, empty database for the backend (None: SQLite in the data directory)."""
    from tests.support.server import drop_pg_database

    url, pg_name = database_for(backend, tmp_path)
    yield url
    if pg_name:
        drop_pg_database(pg_name)


def fleet(tmp_path: Path, url: str | None, n: int, **env: str) -> list[LiveServer]:
    """``n`` servers on one data directory and database, sharing one secret key; the first
    start prints the generated admin password (so we can count who bootstrapped)."""
    secret = secrets.token_urlsafe(48)
    return [
        LiveServer(
            data_dir=tmp_path / "data",
            database_url=url,
            secret_key=secret,
            extra_env=env,
            omit_env=("FLOWGATE_BOOTSTRAP_ADMIN_PASSWORD",),
        )
        for _ in range(n)
    ]


def bootstrapped(server: LiveServer) -> tuple[int, int]:
    """(organisations named ``default``, users) in the server's database."""
    orgs = query(server, "SELECT count(*) FROM organizations WHERE name = 'default'")[0][0]
    users = query(server, "SELECT count(*) FROM users")[0][0]
    return int(orgs), int(users)


def banners(servers: list[LiveServer]) -> int:
    return sum(s.full_log().count(BANNER) for s in servers)


def wait_exit(server: LiveServer, timeout: float = 60) -> int:
    assert server.proc is not None
    return server.proc.wait(timeout=timeout)


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error: ")]


def assert_one_clear_line(output: str, *expected: str) -> str:
    """Exactly one ``error:`` line, containing every ``expected`` text, and no traceback."""
    assert "Traceback" not in output, output
    lines = error_lines(output)
    assert len(lines) == 1, output
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def stop_all(servers: list[LiveServer]) -> None:
    for s in servers:
        s.stop()


# -- several servers at the same moment ---------------------------------------------------------


def test_five_servers_with_redis_start_together_and_bootstrap_once(
    database: str | None, tmp_path: Path
) -> None:
    servers = fleet(tmp_path, database, 5, FLOWGATE_REDIS_URL=REDIS)
    try:
        for s in servers:
            s.launch()
        for s in servers:
            s.wait_ready(timeout=60)
        assert bootstrapped(servers[0]) == (1, 1)
        assert banners(servers) == 1
        resp = httpx.get(f"{servers[0].url}/healthz")
        assert "server" not in resp.headers  # no "Server: uvicorn" banner
        for s in servers:
            assert "Traceback" not in s.full_log(), s.logs()
    finally:
        stop_all(servers)


def test_five_servers_without_redis_one_serves_the_others_refuse(
    database: str | None, tmp_path: Path
) -> None:
    servers = fleet(tmp_path, database, 5)
    late: list[LiveServer] = []
    try:
        for s in servers:
            s.launch()

        def settled() -> bool:
            exited = [s for s in servers if s.proc is not None and s.proc.poll() is not None]
            return len(exited) == 4 and any(s.is_ready() for s in servers)

        wait_for(settled, timeout=60, interval=0.2)
        (winner,) = [s for s in servers if s.proc is not None and s.proc.poll() is None]
        for s in servers:
            if s is winner:
                continue
            assert s.proc is not None and s.proc.returncode != 0, s.logs()
            assert_one_clear_line(s.full_log(), BUSY, "FLOWGATE_REDIS_URL is not set")
        assert bootstrapped(winner) == (1, 1)
        assert banners(servers) == 1

        # A mixed set-up is refused too: a server with Redis, here with two workers, next to
        # one without. Its workers fail to start, and so the whole command fails.
        late = fleet(tmp_path, database, 1, FLOWGATE_REDIS_URL=REDIS)
        late[0].secret_key = winner.secret_key
        late[0].args = ("--workers", "2")
        late[0].launch()
        assert wait_exit(late[0]) == STARTUP_FAILURE, late[0].logs()
        output = late[0].full_log()
        assert "Traceback" not in output, output
        assert BUSY_WITHOUT_REDIS in output
        assert winner.is_ready()
    finally:
        stop_all(servers + late)


def test_workers_with_redis_serve(backend: str, tmp_path: Path) -> None:
    """Three fresh set-ups at once (the worker race used to stop the server 3 times in 4)."""
    from tests.support.server import drop_pg_database

    setups: list[LiveServer] = []
    drops: list[str] = []
    try:
        for attempt in range(3):
            url, pg_name = database_for(backend, tmp_path)
            drops += [pg_name] if pg_name else []
            (live,) = fleet(tmp_path / f"try{attempt}", url, 1, FLOWGATE_REDIS_URL=REDIS)
            live.args = ("--workers", "3")
            setups.append(live.launch())
        for live in setups:
            live.wait_ready(timeout=60)
            wait_for(
                lambda live=live: live.full_log().count("Application startup complete.") == 3,
                timeout=60,
            )
        for live in setups:
            assert live.proc is not None and live.proc.poll() is None, live.logs()
            assert bootstrapped(live) == (1, 1)
            assert banners([live]) == 1
            live.proc.send_signal(signal.SIGTERM)
        for live in setups:
            assert wait_exit(live, timeout=30) == 0, live.logs()
    finally:
        stop_all(setups)
        for name in drops:
            drop_pg_database(name)


def test_workers_without_redis_are_refused(tmp_path: Path) -> None:
    live = LiveServer(data_dir=tmp_path / "data", database_url=None)
    result = live.cli("serve", "--workers", "3", check=False)
    assert result.returncode == 2, result.stderr
    assert_one_clear_line(result.stderr, "--workers 3 needs FLOWGATE_REDIS_URL", "--workers 1")
    assert not (tmp_path / "data" / "flowgate.db").exists()


# -- clear start-up errors ------------------------------------------------------------------------

PASSWORD = "pw-" + secrets.token_urlsafe(12)


def serve_once(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    live = LiveServer(data_dir=tmp_path / "data", database_url=None, extra_env=env)
    return live.cli("serve", check=False)


@pytest.mark.parametrize("layout", ["child-of-a-file", "a-file"])
def test_an_unusable_data_directory_is_one_line(tmp_path: Path, layout: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    data_dir = blocker / "data" if layout == "child-of-a-file" else blocker
    result = serve_once(tmp_path, FLOWGATE_DATA_DIR=str(data_dir))
    assert result.returncode == 2, result.stderr
    assert_one_clear_line(result.stderr, str(data_dir), "FLOWGATE_DATA_DIR")


def unused_port_url() -> str:
    return f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:{free_port()}/flowgate"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nonsense", "FLOWGATE_DATABASE_URL is malformed"),
        (f"postgresql+asyncpg://postgres:{PASSWORD}@db:port/x", "is malformed (invalid port)"),
        (f"postgresql://postgres:{PASSWORD}@127.0.0.1/x", "postgresql://postgres:***@127.0.0.1/x"),
        ("unused-port", "cannot use the database postgresql+asyncpg://postgres:***@127.0.0.1:"),
        (
            f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:5432/flowgate_no_such_db",
            'database "flowgate_no_such_db" does not exist',
        ),
    ],
    ids=["not-a-url", "bad-port", "unsupported-driver", "unreachable", "no-such-database"],
)
def test_a_bad_database_url_is_one_line_without_its_password(
    tmp_path: Path, url: str, expected: str
) -> None:
    if "no_such_db" in url and not pg_available():
        pytest.skip("needs PostgreSQL on 127.0.0.1:5432")
    url = unused_port_url() if url == "unused-port" else url
    result = serve_once(tmp_path, FLOWGATE_DATABASE_URL=url)
    assert result.returncode == 2, result.stderr
    assert_one_clear_line(result.stderr, expected)
    assert PASSWORD not in result.stderr + result.stdout


def test_production_refuses_a_generated_secret_key(tmp_path: Path) -> None:
    live = LiveServer(
        data_dir=tmp_path / "data",
        database_url=None,
        extra_env={"FLOWGATE_ENVIRONMENT": "production"},
        omit_env=("FLOWGATE_SECRET_KEY",),
    )
    result = live.cli("serve", check=False)
    assert result.returncode == 2, result.stderr
    assert_one_clear_line(
        result.stderr,
        "FLOWGATE_ENVIRONMENT=production needs FLOWGATE_SECRET_KEY",
        "export FLOWGATE_SECRET_KEY=$(python -c 'import secrets; "
        "print(secrets.token_urlsafe(48))')",
    )
    assert not (tmp_path / "data" / "secret_key").exists()


def test_a_guessed_public_url_is_refused_in_production_and_loud_in_development(
    tmp_path: Path,
) -> None:
    live = LiveServer(
        data_dir=tmp_path / "data",
        database_url=None,
        extra_env={"FLOWGATE_ENVIRONMENT": "production", "FLOWGATE_HOST": "0.0.0.0"},
        omit_env=("FLOWGATE_PUBLIC_URL",),
    )
    result = live.cli("serve", check=False)
    assert result.returncode == 2, result.stderr
    assert_one_clear_line(result.stderr, "FLOWGATE_PUBLIC_URL is not set", "http://127.0.0.1:")
    # In development it only warns; the refusal here comes later, from the unmigrated schema.
    live.extra_env.update(FLOWGATE_ENVIRONMENT="development", FLOWGATE_MIGRATE_ON_START="false")
    result = live.cli("serve", check=False)
    assert result.returncode == 2, result.stderr
    warnings = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(
        w["level"] == "WARNING" and "FLOWGATE_PUBLIC_URL is not set" in w["msg"] for w in warnings
    ), result.stderr
    assert_one_clear_line(result.stderr, "run `flowgate db upgrade`")


def test_migrate_on_start_false_refuses_an_old_schema_until_upgraded(tmp_path: Path) -> None:
    live = LiveServer(
        data_dir=tmp_path / "data",
        database_url=None,
        extra_env={"FLOWGATE_MIGRATE_ON_START": "false"},
    )
    result = live.cli("serve", check=False)
    assert result.returncode == 2, result.stderr
    assert_one_clear_line(
        result.stderr, "FLOWGATE_MIGRATE_ON_START is false", "run `flowgate db upgrade`"
    )
    live.cli("db", "upgrade")
    try:
        live.start()
    finally:
        live.stop()


# -- logs ---------------------------------------------------------------------------------------


def test_logs_are_text_on_a_terminal_and_json_otherwise(tmp_path: Path) -> None:
    env = LiveServer(data_dir=tmp_path / "data", database_url=None).env()
    env.pop("FLOWGATE_LOG_FORMAT", None)
    command = [sys.executable, "-m", "flowgate", "db", "upgrade"]

    piped = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0, piped.stderr
    entry = json.loads(next(line for line in piped.stderr.splitlines() if "Context impl" in line))
    assert entry["logger"] == "alembic.runtime.migration"

    main, secondary = pty.openpty()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=secondary)
    os.close(secondary)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal closes when the process ends
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert proc.wait(timeout=60) == 0
    text = b"".join(chunks).decode(errors="replace")
    assert re.search(
        r"^\d\d:\d\d:\d\d INFO +alembic\.runtime\.migration Context impl", text, re.MULTILINE
    ), text
    assert "{" not in text


def test_text_logs_drop_credentials_like_json_logs() -> None:
    record = logging.makeLogRecord(
        {
            "name": "flowgate.test",
            "levelname": "INFO",
            "msg": "gateway registered",
            "gateway_id": "g-1",
            "opamp_token": "tok-secret",
            "password": "pw-secret",
            "client_secret": "cs-secret",
        }
    )
    for formatter in (TextFormatter(), JsonFormatter()):
        line = formatter.format(record)
        assert "gateway registered" in line and "g-1" in line
        for secret in ("tok-secret", "pw-secret", "cs-secret"):
            assert secret not in line
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d INFO +flowgate\.test gateway registered gateway_id=g-1",
        TextFormatter().format(record),
    )

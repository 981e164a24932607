"""Operating FlowGate: the admin CLI (every setup step scriptable; secrets alone on stdout), the
first start without a configured admin password, probes, and settings that refuse a weak key."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import anonymous, client, login
from tests.support.db import is_postgres
from tests.support.server import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer

TOKEN = re.compile(r"^[A-Za-z0-9_-]{64}\n$")


def test_cli_scripts_every_setup_step(server: LiveServer) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    org = server.cli("orgs", "create", name)
    org_id = str(uuid.UUID(org.stdout.strip()))
    assert org.stdout == f"{org_id}\n"

    email = f"ops-{uuid.uuid4().hex[:6]}@example.com"
    password = f"pw-{uuid.uuid4().hex[:12]}"
    user = server.cli(
        "users", "create", email, "--password", password, "--org", name, "--role", "operator"
    )
    user_id = str(uuid.UUID(user.stdout.strip()))
    assert password not in user.stdout + user.stderr

    key = server.cli("api-keys", "create", "--org", name, "--role", "admin", "--name", "ci")
    assert re.fullmatch(r"fgk_[A-Za-z0-9_-]+\n", key.stdout), key.stdout
    api_key = key.stdout.strip()
    assert api_key not in key.stderr

    # `TOKEN=$(flowgate tokens create ...)`: stdout is the token and nothing else.
    token = server.cli("tokens", "create", "--org", name, "--name", "x")
    assert TOKEN.fullmatch(token.stdout), token.stdout
    assert token.stdout.strip() not in token.stderr
    unlimited = server.cli("tokens", "create", "--org", name, "--name", "fleet", "--unlimited")
    assert TOKEN.fullmatch(unlimited.stdout)

    with client(server, login(server, email, password)) as person:
        me = person.get("/api/v1/auth/me").json()
        assert (me["id"], me["organizations"]) == (
            user_id,
            [{"id": org_id, "name": name, "role": "operator"}],
        )
        tokens = {t["name"]: t for t in person.get("/api/v1/registration-tokens").json()}
        assert (tokens["x"]["max_uses"], tokens["fleet"]["max_uses"]) == (1, None)
    with client(server, api_key) as admin:
        members = admin.get("/api/v1/users").json()
        assert [(m["id"], m["role"]) for m in members] == [(user_id, "operator")]
    http = anonymous(server)
    for n, plain in enumerate(
        (token.stdout.strip(), unlimited.stdout.strip(), unlimited.stdout.strip())
    ):
        resp = http.post(
            "/api/v1/gateways",
            json={"name": f"gw{n}", "instance_id": f"cli-gw-{n}"},
            headers={"Authorization": f"Bearer {plain}"},
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["org_id"] == org_id
    resp = http.post(
        "/api/v1/gateways",
        json={"name": "again", "instance_id": "cli-gw-9"},
        headers={"Authorization": f"Bearer {token.stdout.strip()}"},
    )
    assert resp.status_code == 401  # single use by default
    server.assert_not_logged(password, api_key, token.stdout.strip(), unlimited.stdout.strip())


def test_cli_reports_errors_with_a_non_zero_exit(server: LiveServer) -> None:
    missing = server.cli("tokens", "create", "--org", "no-such-org", "--name", "x", check=False)
    assert missing.returncode == 1
    assert missing.stdout == ""
    assert "Organization 'no-such-org' not found" in missing.stderr
    duplicate = server.cli("orgs", "create", "default", check=False)
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr
    short = server.cli(
        "users", "create", "s@example.com", "--password", "short", "--org", "default", check=False
    )
    assert short.returncode == 2
    assert "at least 8 characters" in short.stderr
    assert "short" not in short.stdout


def test_a_cli_token_registers_into_the_org_it_names(server: LiveServer) -> None:
    token = server.cli("tokens", "create", "--org", "default", "--name", "x").stdout
    assert TOKEN.fullmatch(token)
    resp = anonymous(server).post(
        "/api/v1/gateways",
        json={"name": "default-gw", "instance_id": f"d-{uuid.uuid4().hex[:8]}"},
        headers={"Authorization": f"Bearer {token.strip()}"},
    )
    assert resp.status_code == 201, resp.text
    me = login(server, ADMIN_EMAIL, ADMIN_PASSWORD)
    with client(server, me) as admin:
        orgs = {o["name"]: o["id"] for o in admin.get("/api/v1/orgs").json()}
    assert resp.json()["org_id"] == orgs["default"]


# -- first start -------------------------------------------------------------------------------


def test_first_start_prints_a_generated_admin_password_once(make_server: Any) -> None:
    live: LiveServer = make_server(omit_env=("FLOWGATE_BOOTSTRAP_ADMIN_PASSWORD",))
    assert "FLOWGATE_BOOTSTRAP_ADMIN_PASSWORD" not in live.env()
    found = re.findall(r"Admin password \(shown once\): (\S+)", live.full_log())
    assert len(found) == 1, live.logs()
    password = found[0]
    assert len(password) >= 16
    assert f"Admin email:  {ADMIN_EMAIL}" in live.full_log()
    token = login(live, ADMIN_EMAIL, password)
    with client(live, token) as admin:
        me = admin.get("/api/v1/auth/me").json()
        assert me["is_superuser"] is True
        assert [(o["name"], o["role"]) for o in me["organizations"]] == [("default", "admin")]
    # Shown once: a restart neither prints it again nor changes it.
    live.restart()
    assert live.full_log().count(password) == 1
    assert len(re.findall(r"Admin password \(shown once\)", live.full_log())) == 1
    login(live, ADMIN_EMAIL, password)


def test_a_configured_admin_password_is_never_printed(server: LiveServer) -> None:
    assert "Admin password (shown once)" not in server.full_log()
    server.assert_not_logged(ADMIN_PASSWORD)


# -- probes ------------------------------------------------------------------------------------


def test_probes(server: LiveServer) -> None:
    http = anonymous(server)
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ok", "database": "ok"})
    doc = http.get("/openapi.json").json()
    assert {"/api/v1/gateways", "/api/v1/opamp/heartbeat/{instance_id}"} <= set(doc["paths"])


def test_readyz_follows_the_database(make_server: Any) -> None:
    live: LiveServer = make_server()
    if not is_postgres(live):
        pytest.skip("needs a database that can go away under a running server")
    assert live.database_url is not None
    name = live.database_url.rsplit("/", 1)[1]
    hidden = f"{name}_away"

    async def rename(old: str, new: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
        try:
            for _ in range(50):  # the server reconnects; cut it off and rename in one go
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    old,
                )
                try:
                    await conn.execute(f'ALTER DATABASE "{old}" RENAME TO "{new}"')
                    return
                except asyncpg.ObjectInUseError:
                    await asyncio.sleep(0.05)
            raise AssertionError("could not rename the database")
        finally:
            await conn.close()

    asyncio.run(rename(name, hidden))
    try:
        deadline = time.monotonic() + 10
        resp = anonymous(live).get("/readyz")
        while resp.status_code != 503 and time.monotonic() < deadline:
            time.sleep(0.1)
            resp = anonymous(live).get("/readyz")
        assert (resp.status_code, resp.json()) == (
            503,
            {"status": "unavailable", "database": "unreachable"},
        )
        assert anonymous(live).get("/healthz").status_code == 200  # alive, just not ready
    finally:
        asyncio.run(rename(hidden, name))
    deadline = time.monotonic() + 10
    resp = anonymous(live).get("/readyz")
    while resp.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
        resp = anonymous(live).get("/readyz")
    assert resp.status_code == 200


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "command"),
    [
        ("changeme", ("db", "upgrade")),
        ("CHANGETHIS", ("tokens", "create", "--org", "default", "--name", "x")),
        ("short-but-not-a-placeholder-31c", ("serve",)),
    ],
)
def test_settings_refuse_a_weak_secret_key(
    tmp_path: Path, secret: str, command: tuple[str, ...]
) -> None:
    live = LiveServer(data_dir=tmp_path / "data", database_url=None, secret_key=secret)
    result = live.cli(*command, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    message = " ".join(result.stderr.split())
    assert "FLOWGATE_SECRET_KEY must be at least 32 characters and not a placeholder" in message
    assert secret not in result.stderr
    assert not (tmp_path / "data" / "flowgate.db").exists()


def test_settings_accept_a_strong_secret_key(tmp_path: Path) -> None:
    live = LiveServer(data_dir=tmp_path / "data", database_url=None, secret_key="k" * 32)
    result = live.cli("db", "upgrade")
    assert result.returncode == 0
    assert (tmp_path / "data" / "flowgate.db").exists()

"""Harness for the gateway script tests.

* ``FlowGate``: a ``flowgate serve`` subprocess on a free port with its own data directory
  and database (SQLite in the data directory, or a fresh PostgreSQL database that is dropped
  afterwards), restartable on the same port and data.
* ``GatewayRun``: ``bash gateway/docker-entrypoint.sh`` with a clean environment, its own
  state directory and short intervals; it records its log. ``OTELCOL_BIN`` is the stand-in
  (``fake_otelcol``, which records events) unless the run is made with ``real_gateways``:
* ``real_gateways`` runs the REAL ``otelcol-contrib`` 0.135 of the pinned test-only package
  (backend/requirements-collector.txt; components: filelog receiver, batch, memory_limiter and
  k8spath processors, otlphttp exporter, no extensions). Each gateway gets a local config of
  those components and an application log file; its collector tails that file and exports to
  ``otlp_sink``, a tiny OTLP/HTTP receiver, with headers naming the gateway and the config
  (``x-flowgate-config``), so a test sees which configuration a collector really runs. Under
  ``CI=true`` a missing binary is a failure, elsewhere a skip.

PostgreSQL tests skip when 127.0.0.1:5432 is unreachable, except under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import IN_CI
from tests.support.polling import wait_for
from tests.support.server import free_port, pg_available, pg_exec
from tests.test_collector_corpus import BINARY, collector_binary

REPO = Path(__file__).resolve().parents[3]
GATEWAY_DIR = REPO / "gateway"
HERE = Path(__file__).resolve().parent
FAKE_OTELCOL = HERE / "fake_otelcol"
FAKE_SUPERVISOR = HERE / "fake_opampsupervisor"
ADMIN_EMAIL = "admin@example.com"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- FlowGate server ----------------------------------------------------------------------


class FlowGate:
    """A FlowGate server process and an admin API client for it."""

    def __init__(self, kind: str, tmp: Path) -> None:
        self.kind = kind
        self.data_dir = tmp / "data"
        self.port = free_port()
        self.secret_key = secrets.token_urlsafe(48)
        self.admin_password = "pw-" + secrets.token_urlsafe(16)
        self.pg_name: str | None = None
        self.database_url: str | None = None
        if kind == "postgres":
            self.pg_name = f"flowgate_gw_test_{uuid.uuid4().hex[:12]}"
            pg_exec(f'CREATE DATABASE "{self.pg_name}"')
            self.database_url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.pg_name}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / "server.log"
        self._admin: httpx.Client | None = None
        self.org_id = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
        env.update(
            FLOWGATE_DATA_DIR=str(self.data_dir),
            FLOWGATE_SECRET_KEY=self.secret_key,
            FLOWGATE_BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
            FLOWGATE_BOOTSTRAP_ADMIN_PASSWORD=self.admin_password,
            FLOWGATE_PUBLIC_URL=self.url,
            # heartbeats are buffered and flushed in batches; flush often so status is fresh
            FLOWGATE_FLUSH_INTERVAL_SECONDS="0.5",
            FLOWGATE_SUMMARY_CACHE_SECONDS="0",
        )
        if self.database_url:
            env["FLOWGATE_DATABASE_URL"] = self.database_url
        return env

    def start(self, timeout: float = 30) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flowgate",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"flowgate serve exited early:\n{self.log()[-5000:]}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=timeout, interval=0.1)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        if self._admin is not None:
            self._admin.close()
        self.stop()
        if self.pg_name:
            pg_exec(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "flowgate", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"flowgate {' '.join(args)} failed:\n{done.stderr}"
        return done.stdout

    # -- admin API --

    @property
    def admin(self) -> httpx.Client:
        if self._admin is None:
            client = httpx.Client(base_url=self.url, timeout=10)
            r = client.post(
                "/api/v1/auth/login",
                json={"email": ADMIN_EMAIL, "password": self.admin_password},
            )
            assert r.status_code == 200, r.text
            client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            me = client.get("/api/v1/auth/me")
            assert me.status_code == 200, me.text
            orgs = {o["name"]: o["id"] for o in me.json()["organizations"]}
            self.org_id = orgs["default"]
            self._admin = client
        return self._admin

    def token_via_cli(self, name: str, *extra: str) -> str:
        lines = self.cli("tokens", "create", "--org", "default", "--name", name, *extra)
        lines = lines.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    def token_via_api(self, name: str, max_uses: int | None = 1) -> str:
        r = self.admin.post(
            "/api/v1/registration-tokens",
            params={"org_id": self.org_id},
            json={"name": name, "expires_in_days": 1, "max_uses": max_uses},
        )
        assert r.status_code in (200, 201), r.text
        return str(r.json()["token"])

    def gateways(self, instance_id: str) -> list[dict[str, Any]]:
        r = self.admin.get("/api/v1/gateways", params={"org_id": self.org_id, "limit": 500})
        assert r.status_code == 200, r.text
        return [g for g in r.json()["items"] if g["instance_id"] == instance_id]

    def gateway(self, instance_id: str) -> dict[str, Any] | None:
        found = self.gateways(instance_id)
        return found[0] if found else None

    def status(self, gateway_id: str) -> dict[str, Any]:
        r = self.admin.get(f"/api/v1/gateways/{gateway_id}/status", params={"org_id": self.org_id})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def push_config(self, gateway_id: str, config_yaml: str) -> int:
        r = self.admin.put(
            f"/api/v1/gateways/{gateway_id}/remote-config",
            params={"org_id": self.org_id},
            json={"config_yaml": config_yaml},
        )
        assert r.status_code in (200, 201, 202), r.text
        return int(r.json()["config_version"])

    def set_labels(self, gateway_id: str, **labels: str) -> None:
        r = self.admin.patch(
            f"/api/v1/gateways/{gateway_id}",
            params={"org_id": self.org_id},
            json={"labels": labels},
        )
        assert r.status_code == 200, r.text

    def template(self, *bodies: str) -> str:
        """A new configuration template with these versions (1, 2, ...); returns its id."""
        r = self.admin.post(
            "/api/v1/configs",
            params={"org_id": self.org_id},
            json={"name": f"gw-test-{uuid.uuid4().hex[:8]}"},
        )
        assert r.status_code == 201, r.text
        config_id = str(r.json()["id"])
        for body in bodies:
            r = self.admin.post(
                f"/api/v1/configs/{config_id}/versions",
                params={"org_id": self.org_id},
                json={"config_yaml": body},
            )
            assert r.status_code == 201, r.text
        return config_id

    def deploy(self, config_id: str, version: int, **body: Any) -> str:
        r = self.admin.post(
            "/api/v1/deployments",
            params={"org_id": self.org_id},
            json={"config_id": config_id, "version": version, **body},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def deployment(self, deployment_id: str) -> dict[str, Any]:
        r = self.admin.get(f"/api/v1/deployments/{deployment_id}", params={"org_id": self.org_id})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def deployments(self) -> list[dict[str, Any]]:
        r = self.admin.get("/api/v1/deployments", params={"org_id": self.org_id})
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    def rollback(self, deployment_id: str) -> str:
        """POST .../rollback; returns the id of the rollback deployment."""
        r = self.admin.post(
            f"/api/v1/deployments/{deployment_id}/rollback", params={"org_id": self.org_id}
        )
        assert r.status_code in (200, 201), r.text
        found = [d for d in self.deployments() if d["rollback_of"] == deployment_id]
        assert len(found) == 1, found
        return str(found[0]["id"])

    def targets(self, deployment_id: str) -> dict[str, dict[str, Any]]:
        r = self.admin.get(
            f"/api/v1/deployments/{deployment_id}/gateways",
            params={"org_id": self.org_id, "limit": 500},
        )
        assert r.status_code == 200, r.text
        return {t["gateway_id"]: t for t in r.json()["items"]}

    def wait_deployment(
        self, deployment_id: str, state: str, timeout: float = 30
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            info = self.deployment(deployment_id)
            return info if info["state"] == state else None

        try:
            return dict(wait_for(probe, timeout=timeout, interval=0.2))
        except AssertionError:
            raise AssertionError(
                f"deployment never became {state}: {self.deployment(deployment_id)}\n"
                f"targets: {self.targets(deployment_id)}"
            ) from None

    def deactivate(self, gateway_id: str) -> None:
        r = self.admin.post(
            f"/api/v1/gateways/{gateway_id}/deactivate", params={"org_id": self.org_id}
        )
        assert r.status_code in (200, 204), r.text

    def heartbeat(self, instance_id: str, opamp_token: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}/api/v1/opamp/heartbeat/{instance_id}",
            headers={"Authorization": f"Bearer {opamp_token}"},
            json={},
            timeout=10,
        )

    def wait_healthy(self, instance_id: str, timeout: float = 15) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            gw = self.gateway(instance_id)
            if not gw:
                return None
            status = self.status(gw["id"])
            if status["health"]["status"] == "healthy" and status["health"]["health_score"] == 100:
                return status
            return None

        return dict(wait_for(probe, timeout=timeout, interval=0.2))


def _flowgate(kind: str, tmp: Path) -> Iterator[FlowGate]:
    if kind == "postgres" and not pg_available():
        if IN_CI:
            pytest.fail("PostgreSQL is required when CI=true but 127.0.0.1:5432 is unreachable")
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")
    server = FlowGate(kind, tmp)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def flowgate(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A FlowGate server shared by the tests of a module, once per database backend."""
    yield from _flowgate(request.param, tmp_path_factory.mktemp(f"flowgate-{request.param}"))


# --- gateway processes --------------------------------------------------------------------

JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]+")


class GatewayRun:
    """One ``docker-entrypoint.sh`` process tree (it may be started several times)."""

    def __init__(self, tmp: Path, instance_id: str, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.instance_id = instance_id
        self.state_dir = tmp / "state"
        self.record_dir = tmp / "record"
        self.record_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_file = tmp / "metrics.prom"
        #: What a real collector's filelog receiver tails (see ``real_gateways``).
        self.app_log = tmp / "app.log"
        self.log_path = tmp / "gateway.log"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp),
            "LANG": "C.UTF-8",
            "TMPDIR": str(tmp),
            "INSTANCE_ID": instance_id,
            "GATEWAY_NAME": f"test gateway {instance_id}",
            "HEARTBEAT_INTERVAL": "1",
            "CONFIG_POLL_INTERVAL": "1",
            "BACKOFF_INITIAL_MS": "100",
            "BACKOFF_MAX_MS": "800",
            "CONFIG_APPLY_SETTLE": "0.3",
            "HTTP_CONNECT_TIMEOUT": "2",
            "HTTP_TIMEOUT": "5",
            "SHUTDOWN_TIMEOUT": "5",
            "GATEWAY_STATE_DIR": str(self.state_dir),
            "OTELCOL_BIN": str(FAKE_OTELCOL),
            "OTELCOL_CONFIG": str(GATEWAY_DIR / "otel-collector-config.yaml"),
            "OPAMP_SUPERVISOR_BIN": str(FAKE_SUPERVISOR),
            "OPAMP_SUPERVISOR_TEMPLATE": str(GATEWAY_DIR / "opampsupervisor.yaml"),
            "OPAMP_EXTENSION_CONFIG": str(GATEWAY_DIR / "opamp-extension.yaml"),
            "COLLECTOR_HEALTH_URL": "",
            "COLLECTOR_METRICS_URL": self.metrics_file.as_uri(),
            "FAKE_OTELCOL_RECORD_DIR": str(self.record_dir),
            "FAKE_OTELCOL_PYTHON": sys.executable,
        }
        self.env.update(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    # -- lifecycle --

    def start(self, *args: str, **env: str) -> GatewayRun:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.env.update(env)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            ["bash", str(GATEWAY_DIR / "docker-entrypoint.sh"), *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def wait_exit(self, timeout: float = 10) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def cleanup(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        # anything left in the session we created (its id is our child's pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)

    # -- observations --

    def log(self, since_start: bool = False) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_bytes()
        if since_start:
            text = text[self._log_offset :]
        return text.decode(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 10, count: int = 1) -> list[str]:
        regex = re.compile(pattern)

        def probe() -> list[str] | None:
            if self.proc is not None and self.proc.poll() is not None:
                found = regex.findall(self.log(since_start=True))
                if len(found) >= count:
                    return found
                raise AssertionError(
                    f"gateway exited ({self.proc.returncode}) before logging {pattern!r}:\n"
                    + self.log(since_start=True)[-6000:]
                )
            found = regex.findall(self.log(since_start=True))
            return found if len(found) >= count else None

        try:
            return list(wait_for(probe, timeout=timeout, interval=0.05))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- gateway log ---\n{self.log()[-6000:]}") from None

    def events(self) -> list[dict[str, Any]]:
        path = self.record_dir / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def opamp_token(self) -> str:
        return (self.state_dir / "opamp_token").read_text()

    def config_state(self) -> dict[str, str]:
        path = self.state_dir / "config" / "state"
        if not path.exists():
            return {}
        pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        return dict(pairs)

    def pid(self, name: str) -> int | None:
        path = self.state_dir / "run" / f"{name}.pid"
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie that our child has not reaped yet counts as gone
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Callable[..., GatewayRun]]:
    """Factory: ``gateways(instance_id=None, **env) -> GatewayRun`` (not started)."""
    runs: list[GatewayRun] = []

    def factory(instance_id: str | None = None, **env: str) -> GatewayRun:
        instance_id = instance_id or f"gw-{uuid.uuid4().hex[:10]}"
        run = GatewayRun(tmp_path / f"gw{len(runs)}", instance_id, env)
        runs.append(run)
        return run

    yield factory
    for run in runs:
        run.cleanup()


# --- the real Collector -------------------------------------------------------------------


@pytest.fixture(scope="session")
def otelcol() -> Path:
    """The real otelcol-contrib binary (skip when absent; a failure under CI=true)."""
    path = collector_binary()
    if path is None:
        why = f"{BINARY} is not installed (make install: backend/requirements-collector.txt)"
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)
    return path


class OtlpSink:
    """A tiny OTLP/HTTP receiver: answers 200 to every POST and records its path and
    headers, so tests see what a real collector exports and with which configuration."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with sink.lock:
                    sink.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        }
                    )
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def configs(self, instance_id: str) -> list[str]:
        """The ``x-flowgate-config`` of every export from this gateway, in order."""
        with self.lock:
            return [
                r["headers"].get("x-flowgate-config", "")
                for r in self.requests
                if r["headers"].get("x-flowgate-gateway") == instance_id
            ]

    def wait_config(self, instance_id: str, tag: str, timeout: float = 15) -> None:
        """Until this gateway's collector exports with config ``tag``."""
        try:
            wait_for(lambda: tag in self.configs(instance_id), timeout=timeout, interval=0.1)
        except AssertionError:
            raise AssertionError(
                f"{instance_id} never exported with config {tag!r}: {self.configs(instance_id)}"
            ) from None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def otlp_sink() -> Iterator[OtlpSink]:
    sink = OtlpSink()
    yield sink
    sink.close()


def collector_config(
    tag: str,
    *,
    sink: str,
    metrics_port: int | None = None,
    exporter: str = "otlphttp",
) -> str:
    """A configuration of the real collector's components, the same for every gateway (a
    template version is): each collector tails its own ``$GATEWAY_APP_LOG`` and exports it to
    ``sink`` with headers naming its ``$INSTANCE_ID`` and ``tag``. Internal metrics are off
    (collectors running side by side would fight over :8888), or served on ``metrics_port``:
    a port already taken makes the collector fail when it starts, after ``validate`` passed.
    ``exporter`` is the exporter's type: one this build lacks (``otlp``) passes FlowGate's
    checks, which know no REST gateway's components, but not the collector's ``validate``."""
    if metrics_port is None:
        metrics = "      level: none\n"
    else:
        metrics = (
            "      level: basic\n"
            "      readers:\n"
            "        - pull:\n"
            "            exporter:\n"
            "              prometheus:\n"
            "                host: 127.0.0.1\n"
            f"                port: {metrics_port}\n"
        )
    return f"""\
# config {tag}
receivers:
  filelog:
    include: ["${{env:GATEWAY_APP_LOG}}"]
    start_at: beginning
    poll_interval: 100ms
processors:
  memory_limiter:
    check_interval: 1s
    limit_mib: 256
  batch:
    timeout: 100ms
exporters:
  {exporter}:
    endpoint: {sink}
    encoding: json
    compression: none
    retry_on_failure:
      enabled: false
    headers:
      x-flowgate-gateway: "${{env:INSTANCE_ID}}"
      x-flowgate-config: {tag}
service:
  telemetry:
    logs:
      level: info
    metrics:
{metrics}  pipelines:
    logs:
      receivers: [filelog]
      processors: [memory_limiter, batch]
      exporters: [{exporter}]
"""


@pytest.fixture
def real_gateways(
    gateways: Callable[..., GatewayRun], otelcol: Path, otlp_sink: OtlpSink
) -> Callable[..., GatewayRun]:
    """Factory: ``real_gateways(instance_id=None, **env) -> GatewayRun`` (not started) that
    runs the real collector with a local config (tag ``local``) of its components."""

    def factory(instance_id: str | None = None, **env: str) -> GatewayRun:
        run = gateways(instance_id, OTELCOL_BIN=str(otelcol), **env)
        run.app_log.write_text(f"first line from {run.instance_id}\n")
        local = run.tmp / "local-collector.yaml"
        local.write_text(collector_config("local", sink=otlp_sink.url))
        run.env["OTELCOL_CONFIG"] = str(local)
        run.env["GATEWAY_APP_LOG"] = str(run.app_log)
        return run

    return factory

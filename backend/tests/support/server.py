"""Run a real FlowGate server process for tests: own port, data directory and database."""

from __future__ import annotations

import concurrent.futures
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-" + secrets.token_urlsafe(12)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def pg_exec(sql: str | None) -> None:
    """Run one statement on the maintenance database (None: just connect)."""
    import asyncio

    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", timeout=5)
        try:
            if sql:
                await conn.execute(sql)
        finally:
            await conn.close()

    # A thread of its own, so this also works when called from inside a running event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, go()).result()


def pg_available() -> bool:
    try:
        pg_exec(None)
    except Exception:
        return False
    return True


def pg_url(name: str, port: int = 5432) -> str:
    """The server's URL for test database ``name``, reached on ``port`` (say, a TCP proxy's)."""
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{name}"


def create_pg_database() -> tuple[str, str]:
    name = f"flowgate_test_{uuid.uuid4().hex[:12]}"
    pg_exec(f'CREATE DATABASE "{name}"')
    return name, pg_url(name)


def drop_pg_database(name: str) -> None:
    pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class LiveServer:
    """A ``flowgate serve`` subprocess. Restartable with the same data and database."""

    data_dir: Path
    database_url: str | None
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Variables removed from the environment (e.g. FLOWGATE_BOOTSTRAP_ADMIN_PASSWORD).
    omit_env: tuple[str, ...] = ()
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    #: Extra ``flowgate serve`` arguments, e.g. ``("--workers", "3")``.
    args: tuple[str, ...] = ()
    #: Python arguments that start the server instead of ``-m flowgate serve *args``.
    command: tuple[str, ...] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWGATE_")}
        env.update(
            FLOWGATE_ENVIRONMENT="test",
            FLOWGATE_HOST="127.0.0.1",
            FLOWGATE_PORT=str(self.port),
            FLOWGATE_DATA_DIR=str(self.data_dir),
            FLOWGATE_SECRET_KEY=self.secret_key,
            FLOWGATE_PUBLIC_URL=self.url,
            FLOWGATE_BOOTSTRAP_ADMIN_EMAIL=ADMIN_EMAIL,
            FLOWGATE_BOOTSTRAP_ADMIN_PASSWORD=ADMIN_PASSWORD,
            FLOWGATE_FLUSH_INTERVAL_SECONDS="0.5",
            FLOWGATE_SUMMARY_CACHE_SECONDS="0",
            # Every test signs in from 127.0.0.1, and a shared server sees all their failed
            # sign-ins (the fuzzers make dozens): no per-address lock or delay there. The
            # throttle tests set their own limits.
            FLOWGATE_LOGIN_MAX_FAILURES_PER_ADDRESS="1000000",
            FLOWGATE_LOGIN_DELAY_BASE_SECONDS="0",
        )
        if self.database_url:
            env["FLOWGATE_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        for name in self.omit_env:
            env.pop(name, None)
        return env

    def start(self, timeout: float = 30) -> LiveServer:
        return self.launch().wait_ready(timeout)

    def launch(self, log_dir: Path | None = None) -> LiveServer:
        """Start the process without waiting for it; the log goes to ``log_dir`` (default: the
        data directory)."""
        log_dir = log_dir or self.data_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"server-{self.port}.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *(self.command or ("-m", "flowgate", "serve", *self.args))],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def is_ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 30) -> LiveServer:
        """Wait until ``/readyz`` answers 200; raise if the process exits or takes too long."""
        assert self.proc is not None, "not launched"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.logs()}")
            if self.is_ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become ready:\n{self.logs()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> LiveServer:
        self.stop()
        return self.start()

    def logs(self) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-20000:]
        return ""

    def full_log(self) -> str:
        """The whole server log (stdout and stderr) so far."""
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return ""

    def assert_not_logged(self, *secrets_: str) -> None:
        """Fail when any of ``secrets_`` (tokens, passwords, keys) appears in the server log."""
        text = self.full_log()
        for secret in secrets_:
            assert secret, "empty secret"
            assert secret not in text, f"a secret ({secret[:6]}...) appears in the server log"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``flowgate <args>`` against this server's database."""
        return subprocess.run(
            [sys.executable, "-m", "flowgate", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            check=check,
            timeout=60,
        )

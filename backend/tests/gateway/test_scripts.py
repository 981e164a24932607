"""Gateway script behaviour that needs no FlowGate: the JSON helpers, backoff, process
supervision, signals, the health probe and the native OpAMP modes.

Process supervision, SIGHUP and the health probe run the REAL collector (``real_gateways``).
The stand-ins (``fake_otelcol``, ``fake_opampsupervisor``) remain where the real binary cannot
do what is tested: ignoring SIGTERM (for the SIGKILL escalation), the OpAMP supervisor (not in
the test package) and the ``opamp`` extension (this collector build has no extensions)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.gateway.conftest import (
    GATEWAY_DIR,
    GatewayRun,
    OtlpSink,
    alive,
    collector_config,
    free_port,
    wait_for,
)
from tests.gateway.test_static import check_supervisor_config

Gateways = Callable[..., GatewayRun]


def bash_lib(script: str, tmp_path: Path, stdin: str = "", **env: str) -> str:
    """Run ``script`` in bash with gateway/lib.sh sourced."""
    full_env = {
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "GATEWAY_STATE_DIR": str(tmp_path / "state"),
        **env,
    }
    done = subprocess.run(
        ["bash", "-c", f'set -Eeuo pipefail; source "{GATEWAY_DIR}/lib.sh"; {script}'],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# --- JSON ---------------------------------------------------------------------------------

TRICKY = {
    "detail": {"config_yaml": "nested must not match"},
    "list": [{"config_yaml": "in an array"}, "config_yaml"],
    "config_yaml": 'a: "q"\n\tb: \\ back/slash \u00e9 \U0001f600 \u2028 end',
    "config_version": 12,
    "deployment_id": None,
    "flag": False,
    "ratio": -1.5e3,
    "empty": "",
    'key with "quotes"': "quoted key",
}
JSON_TOOLS = ["jq", "python3", "bash"]


@pytest.mark.parametrize("tool", JSON_TOOLS)
def test_json_reader_agrees_with_python(tool: str, tmp_path: Path) -> None:
    if tool != "bash" and shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")
    doc = json.dumps(TRICKY, indent=1)  # whitespace and escapes as a server may send them
    script = """
        for key in config_yaml config_version deployment_id flag ratio empty missing \\
                   'key with "quotes"'; do
            if value=$(fg_json_get "$key" <<<"$DOC"); then printf '%s=[%s]\\x1e' "$key" "$value"
            else printf '%s=<rc %s>\\x1e' "$key" "$?"; fi
        done
        fg_json_get x <<<'{"x": ' && echo bad || printf 'invalid=<rc %s>' "$?"
    """
    out = bash_lib(script, tmp_path, JSON_TOOL=tool, DOC=doc)
    got = dict(item.split("=", 1) for item in out.split("\x1e"))
    assert got["config_yaml"] == f"[{TRICKY['config_yaml']}]"
    assert got["config_version"] == "[12]"
    assert got["deployment_id"] == "<rc 1>"
    assert got["flag"] == "[false]"
    assert float(got["ratio"].strip("[]")) == -1500.0
    assert got["empty"] == "<rc 1>"
    assert got["missing"] == "<rc 1>"
    assert got['key with "quotes"'] == "[quoted key]"
    assert got["invalid"] == "<rc 2>"


def test_bash_json_reader_handles_a_large_config(tmp_path: Path) -> None:
    config = "receivers:\n" + "".join(f'  otlp/{i}: {{endpoint: "h:{i}"}}\n' for i in range(3000))
    doc = json.dumps({"config_version": 3, "config_yaml": config, "source": "remote"})
    started = time.monotonic()
    out = bash_lib('fg_json_get config_yaml <<<"$DOC"', tmp_path, JSON_TOOL="bash", DOC=doc)
    assert out == config
    assert time.monotonic() - started < 10


def test_json_str_round_trips(tmp_path: Path) -> None:
    values = ["plain", 'q"uote', "back\\slash", "new\nline\ttab\r", "\x01\x1f ctl", "é 😀"]
    script = 'for v in "$@"; do fg_json_str "$v"; printf "\\n"; done'
    done = subprocess.run(
        ["bash", "-c", f'source "{GATEWAY_DIR}/lib.sh"; {script}', "bash", *values],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8", "GATEWAY_STATE_DIR": str(tmp_path)},
        check=True,
    )
    assert [json.loads(line) for line in done.stdout.splitlines()] == values


def test_backoff_grows_exponentially_with_jitter_and_a_cap(tmp_path: Path) -> None:
    script = """
        for attempt in 1 2 3 4 5 6 7 8 9 10; do
            for _ in $(seq 40); do
                fg_backoff_ms "$attempt"
                printf '%s %s\\n' "$attempt" "$REPLY"
            done
        done
    """
    out = bash_lib(script, tmp_path, BACKOFF_INITIAL_MS="100", BACKOFF_MAX_MS="3000")
    delays: dict[int, list[int]] = {}
    for line in out.splitlines():
        attempt, delay = map(int, line.split())
        delays.setdefault(attempt, []).append(delay)
    for attempt, values in delays.items():
        cap = min(100 * 2 ** (attempt - 1), 3000)
        assert all(cap // 2 <= v <= cap for v in values), (attempt, values)
        assert len(set(values)) > 1, "jitter"


# --- processes and signals (no backend: the collector runs unmanaged) ---------------------


def test_unmanaged_gateway_reloads_the_real_collector_on_sighup(
    real_gateways: Gateways, otlp_sink: OtlpSink
) -> None:
    gw = real_gateways()
    gw.start()
    gw.wait_log(r"BACKEND_URL is not set: the collector runs unmanaged")
    otlp_sink.wait_config(gw.instance_id, "local")
    collector = gw.pid("collector")
    assert collector
    # a new config in place, then SIGHUP to the entrypoint: the collector reloads it in place
    (gw.state_dir / "config" / "current.yaml").write_text(
        collector_config("edited", sink=otlp_sink.url)
    )
    assert gw.proc is not None
    gw.proc.send_signal(signal.SIGHUP)
    gw.wait_log(r"\[GATEWAY\] INFO SIGHUP: reloading the collector")
    otlp_sink.wait_config(gw.instance_id, "edited")
    assert gw.pid("collector") == collector and alive(collector)
    assert gw.stop(signal.SIGTERM) == 0
    assert not alive(collector)
    assert "collector exited unexpectedly" not in gw.log()


def test_a_collector_ignoring_sigterm_is_killed(gateways: Gateways) -> None:
    """Stand-in: the real collector cannot be made to ignore SIGTERM."""
    gw = gateways(FAKE_OTELCOL_IGNORE_TERM="1", SHUTDOWN_TIMEOUT="1")
    gw.start()
    gw.wait_log(r"BACKEND_URL is not set: the collector runs unmanaged")
    wait_for(lambda: any(e["event"] == "start" for e in gw.events()))

    collector = gw.pid("collector")
    started = time.monotonic()
    assert gw.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 4
    assert "collector (pid" in gw.log() and "did not stop within 1s; killing it" in gw.log()
    assert collector and not alive(collector)


def test_crash_looping_collector_makes_the_gateway_give_up(
    real_gateways: Gateways, otlp_sink: OtlpSink
) -> None:
    """The local config passes ``validate`` but the real collector cannot start it (its
    metrics port is taken)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        gw = real_gateways(COLLECTOR_MAX_CRASHES="3")
        Path(gw.env["OTELCOL_CONFIG"]).write_text(
            collector_config("local", sink=otlp_sink.url, metrics_port=taken.getsockname()[1])
        )
        gw.start()
        assert gw.wait_exit(timeout=20) == 1
    log = gw.log()
    assert len(re.findall(r"\[GATEWAY\] INFO collector started \(pid", log)) == 3
    assert log.count("bind: address already in use") >= 3
    assert "crash 2 in the last minute" in log and "collector keeps crashing; giving up" in log


def test_invalid_instance_id_is_refused(gateways: Gateways) -> None:
    gw = gateways(instance_id="bad id/..", BACKEND_URL="http://127.0.0.1:9")
    gw.start()
    assert gw.wait_exit(timeout=15) == 2
    assert "INSTANCE_ID must match" in gw.log()


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"status":"Server available"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", free_port()), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_healthcheck_subcommand(real_gateways: Gateways, health_server: str) -> None:
    gw = real_gateways()

    def probe(**env: str) -> int:
        return subprocess.run(
            ["bash", str(GATEWAY_DIR / "docker-entrypoint.sh"), "healthcheck"],
            env={**gw.env, **env},
            capture_output=True,
            timeout=10,
            check=False,
        ).returncode

    assert probe(COLLECTOR_HEALTH_URL=health_server) == 0
    assert probe(COLLECTOR_HEALTH_URL=f"http://127.0.0.1:{free_port()}/") != 0
    # without a health endpoint (or in supervisor mode): is the process alive?
    assert probe() != 0
    gw.start()
    wait_for(lambda: gw.pid("collector"))
    assert probe() == 0
    gw.stop()
    assert probe() != 0


# --- native OpAMP modes -------------------------------------------------------------------
# Stand-ins here: the test package ships no opampsupervisor, and its otelcol-contrib has no
# extensions (so no opamp extension, and `validate` refuses a config that names one). The
# stand-ins record the rendered supervisor config and the collector's arguments/environment.

REG_TOKEN = "reg-" + "A1b2C3d4" * 7


def supervisor_events(gw: GatewayRun, event: str) -> list[dict]:
    return [e for e in gw.events() if e["event"] == event]


def test_supervisor_mode_enrols_with_the_registration_token(gateways: Gateways) -> None:
    gw = gateways(
        GATEWAY_MODE="supervisor",
        BACKEND_URL="https://flowgate.example.com",
        REGISTRATION_TOKEN=REG_TOKEN,
        FLOWGATE_DEBUG="1",
    )
    gw.start()
    start = wait_for(lambda: supervisor_events(gw, "supervisor_start"))[0]
    config = start["config"]
    check_supervisor_config(config)
    assert config["server"]["endpoint"] == "wss://flowgate.example.com/v1/opamp"
    assert config["server"]["headers"]["Authorization"] == [f"Bearer {REG_TOKEN}"]
    assert config["agent"]["executable"] == gw.env["OTELCOL_BIN"]
    assert config["storage"]["directory"] == f"{gw.state_dir}/supervisor"
    attrs = config["agent"]["description"]["non_identifying_attributes"]
    assert attrs["flowgate.instance_id"] == gw.instance_id
    assert start["mode"] == "0o600", "the rendered config carries a credential"
    assert "REGISTRATION_TOKEN" not in start["env"]

    # the supervisor only handles SIGINT: the entrypoint translates SIGTERM
    assert gw.stop(signal.SIGTERM) == 0
    assert supervisor_events(gw, "signal")[-1]["signal"] == "SIGINT"
    assert REG_TOKEN not in gw.log()


def test_supervisor_mode_prefers_the_saved_opamp_token(gateways: Gateways) -> None:
    gw = gateways(
        GATEWAY_MODE="supervisor",
        OPAMP_SERVER_URL="http://127.0.0.1:8000/api/v1/opamp/v1/opamp",
        REGISTRATION_TOKEN=REG_TOKEN,
        OPAMP_TOKEN="eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    )
    gw.start()
    config = wait_for(lambda: supervisor_events(gw, "supervisor_start"))[0]["config"]
    assert config["server"]["endpoint"] == "http://127.0.0.1:8000/api/v1/opamp/v1/opamp"
    assert config["server"]["headers"]["Authorization"] == [f"Bearer {gw.env['OPAMP_TOKEN']}"]
    token_file = gw.state_dir / "opamp_token"
    assert token_file.read_text() == gw.env["OPAMP_TOKEN"]  # seeded from the environment
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert gw.stop() == 0
    assert gw.env["OPAMP_TOKEN"] not in gw.log()


def test_native_mode_without_credentials_fails(gateways: Gateways) -> None:
    gw = gateways(GATEWAY_MODE="supervisor", BACKEND_URL="http://127.0.0.1:9")
    gw.start()
    assert gw.wait_exit(timeout=15) == 3
    assert "native OpAMP needs OPAMP_TOKEN" in gw.log()


def expected_uid(instance_id: str) -> str:
    h = hashlib.sha1(f"flowgate-gateway:{instance_id}".encode()).hexdigest()
    return str(uuid.UUID(h[:12] + "5" + h[13:16] + f"{(int(h[16], 16) & 3) | 8:x}" + h[17:32]))


@pytest.mark.parametrize(
    ("url", "transport"),
    [("ws://127.0.0.1:8000/v1/opamp", "ws"), ("https://fg.example.com/v1/opamp", "http")],
)
def test_extension_mode_runs_the_collector_with_the_opamp_extension(
    gateways: Gateways, url: str, transport: str
) -> None:
    gw = gateways(
        GATEWAY_MODE="extension",
        OPAMP_SERVER_URL=url,
        REGISTRATION_TOKEN=REG_TOKEN,
        FLOWGATE_DEBUG="1",
    )
    gw.start()
    start = wait_for(lambda: [e for e in gw.events() if e["event"] == "start"])[0]
    opamp = start["config"]["extensions"]["opamp"]
    assert set(opamp["server"]) == {transport}
    assert start["config"]["service"]["extensions"] == ["health_check", "opamp"]
    env = start["env"]

    def digest(value: str) -> str:
        return "sha256:" + hashlib.sha256(value.encode()).hexdigest()

    assert env["FLOWGATE_OPAMP_ENDPOINT"] == digest(url)
    assert env["FLOWGATE_OPAMP_AUTHORIZATION"] == digest(f"Bearer {REG_TOKEN}")
    assert env["FLOWGATE_OPAMP_INSTANCE_UID"] == digest(expected_uid(gw.instance_id))
    assert "REGISTRATION_TOKEN" not in env
    fragment = gw.state_dir / "run" / "opamp-extension.yaml"
    assert REG_TOKEN not in fragment.read_text()
    assert yaml.safe_load(fragment.read_text())["extensions"]["opamp"]["server"][transport]
    assert re.search(rf"instance_uid {expected_uid(gw.instance_id)}", gw.log())
    assert gw.stop() == 0
    assert REG_TOKEN not in gw.log()


def test_extension_mode_uses_a_uuid_instance_id_as_is(gateways: Gateways) -> None:
    instance = str(uuid.uuid4())
    gw = gateways(
        instance_id=instance,
        GATEWAY_MODE="extension",
        OPAMP_SERVER_URL="ws://127.0.0.1:8000/v1/opamp",
        OPAMP_TOKEN="opamp-token-value",
    )
    gw.start()
    gw.wait_log(rf"instance_uid {instance}")
    assert gw.stop() == 0

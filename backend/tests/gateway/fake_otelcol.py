"""A stand-in for `otelcol-contrib` (and the OpAMP supervisor) in the gateway tests.

It implements the parts of the real command line the gateway scripts rely on and records
what happened to JSON lines in ``$FAKE_OTELCOL_RECORD_DIR/events.jsonl``:

* ``--version``: prints ``otelcol-contrib version <FAKE_OTELCOL_VERSION>``.
* ``validate --config=FILE``: exits 1 with an ``Error: ...`` line, like the real
  ``validate``, unless the (merged) YAML is a mapping with non-empty ``receivers`` and
  ``exporters`` and ``service.pipelines`` whose references are all defined.
* ``--config=FILE [--config=FILE ...]``: "runs": records its arguments, the names of its
  environment variables (``FLOWGATE_*`` values as sha256 digests, never in clear) and the
  config it loaded; reloads on SIGHUP (exits 1 when the new config is invalid, as the real
  collector does); exits 0 on SIGTERM/SIGINT. A config containing the comment
  ``# fake-otelcol: fail-on-start`` passes ``validate`` but makes the run fail, standing in
  for errors only a running collector sees (a port already in use).
* ``--role=supervisor --config FILE``: an OpAMP supervisor: records its parsed config and
  the file's mode; exits 0 on SIGINT; dies on SIGTERM without cleanup (like the real one,
  which only handles SIGINT).

Environment: ``FAKE_OTELCOL_IGNORE_TERM=1`` ignores SIGTERM (to test the SIGKILL escalation).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml

FAIL_MARKER = "# fake-otelcol: fail-on-start"
KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")
# Component types this fake "was built with" (a subset of otelcol-contrib). Like the real
# collector, an unknown type fails validation: a mistake only the agent can catch.
KNOWN_TYPES = {
    "receivers": {"otlp", "prometheus", "hostmetrics", "filelog", "jaeger", "zipkin", "kafka"},
    "processors": {
        "batch",
        "memory_limiter",
        "attributes",
        "resource",
        "filter",
        "transform",
        "tail_sampling",
        "k8sattributes",
        "resourcedetection",
        "probabilistic_sampler",
    },
    "exporters": {
        "otlp",
        "otlphttp",
        "debug",
        "prometheus",
        "prometheusremotewrite",
        "kafka",
        "file",
        "loadbalancing",
    },
    "extensions": {
        "health_check",
        "pprof",
        "zpages",
        "opamp",
        "file_storage",
        "bearertokenauth",
        "basicauth",
        "oauth2client",
        "headers_setter",
    },
    "connectors": {"forward", "spanmetrics", "count", "routing"},
}


def record(event: str, **fields: Any) -> None:
    directory = os.environ.get("FAKE_OTELCOL_RECORD_DIR")
    if not directory:
        return
    line = json.dumps({"event": event, "pid": os.getpid(), "time": time.time(), **fields})
    with open(Path(directory) / "events.jsonl", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def merge(base: Any, override: Any) -> Any:
    """The collector's merge: maps merge recursively, everything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base.get(key), value) if key in base else value
        return out
    return override


def load(paths: list[str]) -> tuple[Any, str]:
    merged: Any = {}
    texts = []
    for path in paths:
        path = path.removeprefix("file:")
        text = Path(path).read_text(encoding="utf-8")
        texts.append(text)
        merged = merge(merged, yaml.safe_load(text))
    return merged, "\n".join(texts)


def validation_error(doc: Any) -> str | None:
    if not isinstance(doc, dict):
        return "invalid configuration: the configuration is not a mapping"
    for kind in ("receivers", "exporters"):
        if not isinstance(doc.get(kind), dict) or not doc[kind]:
            return f"invalid configuration: no {kind[:-1]} configuration specified in config"
    service = doc.get("service")
    pipelines = service.get("pipelines") if isinstance(service, dict) else None
    if not isinstance(pipelines, dict) or not pipelines:
        return "invalid configuration: service must have at least one pipeline"
    defined = {kind: set((doc.get(kind) or {}).keys()) for kind in KINDS}
    for kind in KINDS:
        for component_id in sorted(defined[kind]):
            type_ = str(component_id).split("/", 1)[0]
            if type_ not in KNOWN_TYPES[kind]:
                return (
                    f"failed to get config: cannot unmarshal the configuration: decoding failed: "
                    f'error decoding \'{kind}\': unknown type: "{type_}" for id: "{component_id}" '
                    f"(valid values: {sorted(KNOWN_TYPES[kind])})"
                )
    for name, pipeline in pipelines.items():
        if not isinstance(pipeline, dict):
            return f"invalid configuration: service::pipelines::{name}: must be a mapping"
        for kind in ("receivers", "processors", "exporters"):
            refs = pipeline.get(kind) or []
            if kind != "processors" and not refs:
                return (
                    f"invalid configuration: service::pipelines::{name}: "
                    f"must have at least one {kind[:-1]}"
                )
            for ref in refs:
                if ref not in defined[kind] and ref not in defined["connectors"]:
                    return (
                        f"invalid configuration: service::pipelines::{name}: "
                        f'references {kind[:-1]} "{ref}" which is not configured'
                    )
    for ext in service.get("extensions") or []:
        if ext not in defined["extensions"]:
            return (
                "invalid configuration: service::extensions: "
                f'references extension "{ext}" which is not configured'
            )
    return None


def config_paths(args: list[str]) -> list[str]:
    paths = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
        elif arg == "--config" and i + 1 < len(args):
            paths.append(args[i + 1])
            i += 1
        i += 1
    return paths


def env_summary() -> dict[str, str]:
    out = {}
    for key, value in os.environ.items():
        if key.startswith("FLOWGATE_OPAMP_"):
            out[key] = "sha256:" + hashlib.sha256(value.encode()).hexdigest()
        else:
            out[key] = ""
    return out


def cmd_validate(args: list[str]) -> int:
    paths = config_paths(args)
    try:
        doc, _ = load(paths)
        error = validation_error(doc)
    except (OSError, yaml.YAMLError) as exc:
        error = f"cannot load configuration: {exc}"
    record("validate", configs=paths, ok=error is None, error=error)
    if error:
        print(f"Error: {error}", file=sys.stderr)
        print(
            "2025/01/01 00:00:00 collector server run finished with error: invalid configuration",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_run(args: list[str]) -> int:
    paths = config_paths(args)
    state: dict[str, Any] = {"stop": None, "reload": False}

    def start_or_reload(event: str) -> bool:
        try:
            doc, text = load(paths)
            error = validation_error(doc)
        except (OSError, yaml.YAMLError) as exc:
            doc, text, error = None, "", f"cannot load configuration: {exc}"
        if error is None and FAIL_MARKER in text:
            error = "cannot start pipelines: listen tcp 0.0.0.0:4317: bind: address already in use"
        record(
            event if error is None else event + "_failed",
            args=args,
            configs=paths,
            config=doc,
            config_sha256=hashlib.sha256(text.encode()).hexdigest(),
            env=env_summary() if event == "start" else None,
            error=error,
        )
        if error is not None:
            print(f"Error: {error}", file=sys.stderr)
            return False
        print(f"fake-otelcol: {event} ok ({', '.join(paths)})", flush=True)
        return True

    def on_stop(signum: int, _frame: Any) -> None:
        state["stop"] = signal.Signals(signum).name

    def on_hup(_signum: int, _frame: Any) -> None:
        state["reload"] = True

    signal.signal(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGINT, on_stop)
    if os.environ.get("FAKE_OTELCOL_IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, on_stop)

    if not start_or_reload("start"):
        return 1
    while state["stop"] is None:
        if state["reload"]:
            state["reload"] = False
            if not start_or_reload("reload"):
                return 1
        time.sleep(0.02)
    record("signal", signal=state["stop"])
    print(f"fake-otelcol: received {state['stop']}, shutting down", flush=True)
    record("exit", code=0)
    return 0


def cmd_supervisor(args: list[str]) -> int:
    paths = config_paths(args)
    path = Path(paths[0])
    mode = path.stat().st_mode & 0o777
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    stop: dict[str, str | None] = {"signal": None}

    def on_int(signum: int, _frame: Any) -> None:
        stop["signal"] = signal.Signals(signum).name

    def on_term(_signum: int, _frame: Any) -> None:
        record("signal", signal="SIGTERM", role="supervisor")
        os._exit(143)

    signal.signal(signal.SIGINT, on_int)
    signal.signal(signal.SIGTERM, on_term)
    record("supervisor_start", args=args, config=config, mode=oct(mode), env=env_summary())
    while stop["signal"] is None:
        time.sleep(0.02)
    record("signal", signal=stop["signal"], role="supervisor")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--role=supervisor"]:
        return cmd_supervisor(argv[1:])
    if argv[:1] == ["--version"]:
        version = os.environ.get("FAKE_OTELCOL_VERSION", "0.126.0")
        print(f"otelcol-contrib version {version}")
        return 0
    if argv[:1] == ["validate"]:
        return cmd_validate(argv[1:])
    return cmd_run(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The real Collector agrees with FlowGate's validator, over a corpus of configurations.

For every file in ``tests/configs/corpus``, ``otelcol-contrib validate`` (0.135, from the pinned
test-only package in ``backend/requirements-collector.txt``) and
:func:`flowgate.configs.validation.validate` (with the component types that binary lists in
``otelcol-contrib components``) must both accept it or both refuse it; when they refuse it, a
component or key the Collector's error names appears in FlowGate's first error. A file's name
says what the Collector does with it (``valid_*`` accepted, ``invalid_*`` refused), so the corpus
cannot silently drift. The cases where the two knowingly differ are listed below, each with its
reason. The binary has no connectors, so connector rules are covered by the unit tests only.

Required when ``CI=true`` (a missing binary fails); skipped elsewhere when it is not installed.
"""

from __future__ import annotations

import os
import platform
import re
import stat
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest
import yaml

from flowgate.configs.validation import validate

CORPUS_DIR = Path(__file__).parent / "configs" / "corpus"
CORPUS = sorted(CORPUS_DIR.glob("*.yaml"))
BINARY = "otelcol-contrib_linux_amd64"
KINDS = ("receivers", "processors", "exporters", "connectors", "extensions")

#: Component-schema cases: the Collector checks each component's own settings (and which
#: signals it supports, and feature gates); FlowGate's validator knows no component schemas,
#: so it accepts these. The gateway runs the Collector's validate before applying.
COMPONENT_SCHEMA = {
    "invalid_schema_filelog_without_include": "filelog requires 'include'",
    "invalid_schema_otlphttp_without_endpoint": "otlphttp requires an endpoint",
    "invalid_schema_unknown_setting": "batch has no setting 'nope'",
    "invalid_schema_signal_not_supported": "filelog supports logs only (not reported over OpAMP)",
    "invalid_schema_telemetry_unknown_key": "service.telemetry's own settings are not checked",
    "invalid_schema_profiles_feature_gate": "profiles pipelines need a Collector feature gate",
}

#: Where FlowGate is stricter than the Collector, on purpose.
STRICTER = {
    "valid_multiple_documents": "the Collector silently ignores every document after the "
    "first; a second document in a pushed configuration is a mistake, so it is refused",
    "valid_custom_tag": "the Collector ignores unknown tags; FlowGate refuses every tag outside "
    "the YAML core schema, which also keeps !!python/... tags out",
    "valid_date_like_value": "2001-13-45 looks like a YAML 1.1 timestamp but is no date: a "
    "string to the Collector, unreadable to YAML 1.1 readers such as FlowGate's own",
}

#: Both refuse it, but for reasons that do not name the same thing.
OTHER_REASON = {
    "invalid_id_spaces_around_slash": "the Collector trims the spaces, then fails to find the "
    "component's settings ('include' must be specified); FlowGate refuses the id itself",
}

GENERIC = {*KINDS, "service", "pipelines", "slice", "int", "string", "map", "bool"}


@dataclass
class Verdict:
    ok: bool
    message: str


def collector_binary() -> Path | None:
    """The otelcol-contrib of the pinned test-only package, made executable; None if absent."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        path = Path(str(resources.files("otel_collector") / "bin" / BINARY))
    except ModuleNotFoundError:
        return None
    if not path.is_file():
        return None
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture(scope="module")
def otelcol() -> Path:
    path = collector_binary()
    if path is None:
        why = f"{BINARY} is not installed (make install: backend/requirements-collector.txt)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return path


@pytest.fixture(scope="module")
def available(otelcol: Path) -> dict[str, set[str]]:
    """What the binary has, from ``otelcol-contrib components`` (YAML)."""
    out = subprocess.run(
        [str(otelcol), "components"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    listed = yaml.safe_load(out)
    return {kind: {c["name"] for c in listed.get(kind) or []} for kind in KINDS}


def collector_verdict(otelcol: Path, path: Path) -> Verdict:
    proc = subprocess.run(
        [str(otelcol), "validate", f"--config=file:{path}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", "")},  # no FLOWGATE_CORPUS_* or other variables
    )
    lines = [ln for ln in proc.stderr.splitlines() if "collector server run finished" not in ln]
    return Verdict(proc.returncode == 0, "\n".join(lines))


def collector_names(message: str) -> set[str]:
    """What the Collector's error names: quoted ids, invalid keys, ``a::b:`` paths and the
    parts of ``'a.b[c]'`` paths; generic words (kinds, Go types) only when nothing else."""
    names = set(re.findall(r'"([^"]+)"', message))
    names |= set(re.findall(r"invalid keys: ([^\s,]+)", message))
    names |= set(re.findall(r"::([^:\s]+)(?=:)", message))
    for quoted in re.findall(r"'([^'\s]+)'", message):
        names |= {p for p in re.split(r"[.\[\]]", quoted) if p and not p.isdigit()}
    specific = names - GENERIC
    return specific or names


def test_the_corpus_is_large_and_its_lists_are_real() -> None:
    assert len(CORPUS) >= 25
    stems = {p.stem for p in CORPUS}
    assert set(COMPONENT_SCHEMA) | set(STRICTER) | set(OTHER_REASON) <= stems
    assert all(s.startswith(("valid_", "invalid_")) for s in stems)
    assert sum(s.startswith("valid_") for s in stems) >= 10
    assert sum(s.startswith("invalid_") for s in stems) >= 25


def test_the_binary_lists_its_components(available: dict[str, set[str]]) -> None:
    assert available == {
        "receivers": {"filelog"},
        "processors": {"batch", "k8spath", "memory_limiter"},
        "exporters": {"otlphttp"},
        "connectors": set(),
        "extensions": set(),
    }


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_the_collector_agrees(otelcol: Path, available: dict[str, set[str]], path: Path) -> None:
    verdict = collector_verdict(otelcol, path)
    assert verdict.ok == path.stem.startswith("valid_"), (
        f"the corpus file's name says what the Collector does; it said: {verdict.message}"
    )
    ours = validate(path.read_text("utf-8"), available)
    if path.stem in COMPONENT_SCHEMA or path.stem in STRICTER:
        # Still different; if this fails, the file belongs with the agreeing ones now.
        assert ours.ok != verdict.ok, (ours.errors, verdict.message)
        return
    assert ours.ok == verdict.ok, (ours.errors, verdict.message)
    if ours.ok or path.stem in OTHER_REASON:
        return
    names = collector_names(verdict.message)
    first = ours.errors[0].message
    if names:  # YAML syntax errors and "empty configuration file" name nothing
        assert any(name in first for name in names), (first, names, verdict.message)

"""The base collector configuration (the seed's "Configuration Sources" fallback)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import yaml

from flowgate.configs.hashing import single_file_hash


@cache
def base_config_yaml() -> str:
    return files("flowgate.configs").joinpath("base-collector.yaml").read_text("utf-8")


def config_hash(config_yaml: str, content_type: str = "text/yaml") -> str:
    """The hash FlowGate shows for a config: the same value OpAMP agents receive as
    ``AgentRemoteConfig.config_hash`` and echo back in ``RemoteConfigStatus``."""
    return single_file_hash(config_yaml, content_type)


class InvalidConfig(ValueError):
    """The text is not a collector configuration (message is safe to show)."""


REQUIRED_SECTIONS = ("receivers", "exporters", "service")


def check_collector_yaml(text: str) -> dict[str, Any]:
    """Parse and sanity-check a collector config: YAML mapping with receivers, exporters and
    service.pipelines whose components are all defined. Full validation is the collector's own
    ``validate`` command, which the gateway runs before applying."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidConfig(f"config_yaml is not valid YAML{where}") from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise InvalidConfig("config_yaml is nested too deeply") from None
    except (ValueError, OverflowError) as exc:  # e.g. a timestamp like 2001-13-45
        raise InvalidConfig(f"config_yaml has an invalid value: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidConfig("config_yaml must be a YAML mapping")
    missing = [s for s in REQUIRED_SECTIONS if not isinstance(doc.get(s), dict)]
    if missing:
        raise InvalidConfig(f"config_yaml is missing section(s): {', '.join(missing)}")
    pipelines = doc["service"].get("pipelines")
    if not isinstance(pipelines, dict) or not pipelines:
        raise InvalidConfig("config_yaml needs at least one pipeline under service.pipelines")
    for name, pipeline in pipelines.items():
        if not isinstance(pipeline, dict):
            raise InvalidConfig(f"pipeline {name!r} must be a mapping")
        for kind in ("receivers", "processors", "exporters"):
            defined = doc.get(kind) or {}
            components = pipeline.get(kind) or []
            if not isinstance(components, list) or not all(isinstance(c, str) for c in components):
                raise InvalidConfig(f"pipeline {name!r}: {kind} must be a list of names")
            for component in components:
                if not isinstance(defined, dict) or component not in defined:
                    raise InvalidConfig(
                        f"pipeline {name!r} uses {kind[:-1]} {component!r}, which is not defined"
                    )
    return doc

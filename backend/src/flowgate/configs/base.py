"""The base collector configuration (the seed's "Configuration Sources" fallback)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib.resources import files
from typing import Any

from flowgate.configs.hashing import single_file_hash
from flowgate.configs.validation import ConfigError, validate
from flowgate.core.errors import ConfigRejected


@cache
def base_config_yaml() -> str:
    return files("flowgate.configs").joinpath("base-collector.yaml").read_text("utf-8")


def config_hash(config_yaml: str, content_type: str = "text/yaml") -> str:
    """The hash FlowGate shows for a config: the same value OpAMP agents receive as
    ``AgentRemoteConfig.config_hash`` and echo back in ``RemoteConfigStatus``."""
    return single_file_hash(config_yaml, content_type)


class InvalidConfig(ValueError):
    """The text is not a collector configuration (message is safe to show)."""


def check_collector_yaml(text: str) -> dict[str, Any]:
    """Parse and check a collector config with :func:`flowgate.configs.validation.validate`;
    raise :class:`InvalidConfig` with the first error and where it is ("... (at line L,
    column C)"). The collector's own ``validate`` command, which the gateway runs before
    applying, also checks each component's settings."""
    result = validate(text)
    if result.document is None:
        raise InvalidConfig(describe(result.errors[0]))
    return result.document


def describe(error: ConfigError) -> str:
    """One error as a sentence that says where it is."""
    return f"{error.message} (at line {error.line}, column {error.column})"


def rejection(errors: Sequence[ConfigError]) -> ConfigRejected:
    """The 422 for a configuration with ``errors`` (at least one): ``{"detail": {"message",
    "errors": [{"line", "column", "message"}]}}``, the message naming the first error."""
    more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
    return ConfigRejected(
        [e.as_dict() for e in errors],
        f"The configuration is not valid: {describe(errors[0])}{more}",
    )


def require_valid(
    text: str, available: Mapping[str, Iterable[str]] | None = None
) -> dict[str, Any]:
    """The parsed configuration, or raise the 422 :class:`ConfigRejected` with every error:
    the check to run before a configuration is stored."""
    result = validate(text, available)
    if result.document is None:
        raise rejection(result.errors)
    return result.document

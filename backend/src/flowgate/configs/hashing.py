"""The identity of a configuration: one SHA-256 over its files (pure; no I/O)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any


def absorb(digest: Any, part: bytes) -> None:
    """Feed one length-prefixed part into a hashlib digest."""
    # Length-prefix every part so no two different inputs produce the same byte stream.
    digest.update(len(part).to_bytes(8, "big"))
    digest.update(part)


def config_hash(files: Mapping[str, tuple[bytes, str]]) -> bytes:
    """SHA-256 over the config files, independent of mapping order.

    For each file name in sorted order the digest absorbs the name (UTF-8), the body and
    the content type (UTF-8), each prefixed with its length as 8 big-endian bytes. The
    result is 32 bytes and never empty, also for an empty ``files`` mapping, because
    opamp-go refuses to report status for an empty ``config_hash``. This is the value OpAMP
    agents receive as ``AgentRemoteConfig.config_hash`` and echo in ``RemoteConfigStatus``.
    """
    digest = hashlib.sha256()
    for name in sorted(files):
        body, content_type = files[name]
        absorb(digest, name.encode("utf-8"))
        absorb(digest, bytes(body))
        absorb(digest, content_type.encode("utf-8"))
    return digest.digest()


def single_file_hash(config_yaml: str, content_type: str = "text/yaml") -> str:
    """The hex hash FlowGate shows for a one-file config (the agent's ``""`` file)."""
    return config_hash({"": (config_yaml.encode("utf-8"), content_type)}).hex()

"""Native OpAMP transports (WebSocket and plain HTTP)."""

from __future__ import annotations

from fastapi import FastAPI

from flowgate.core.runtime import Runtime


def mount_opamp(app: FastAPI, runtime: Runtime, paths: tuple[str, ...]) -> None:
    return None

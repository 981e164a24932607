"""The README's quick start, run literally (bash + curl) against a live server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer

README = Path(__file__).resolve().parents[2] / "README.md"


def quickstart() -> str:
    text = README.read_text()
    block = re.search(
        r"<!-- quickstart:begin -->\s*```bash\n(.*?)```\s*<!-- quickstart:end -->", text, re.S
    )
    assert block, "README.md lost its quick start block"
    return block.group(1)


def json_documents(text: str) -> list[Any]:
    decoder = json.JSONDecoder()
    docs, pos = [], 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        doc, pos = decoder.raw_decode(text, pos)
        docs.append(doc)
    return docs


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_quickstart_ends_with_a_healthy_gateway(make_server: Any) -> None:
    live: LiveServer = make_server()
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", quickstart()],
        env={
            **live.env(),
            "FLOWGATE": live.url,
            "ADMIN_EMAIL": ADMIN_EMAIL,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    heartbeat, status = json_documents(result.stdout)
    assert heartbeat["status"] == "ok"
    assert status["instance_id"] == "gateway-1"
    assert status["health"]["status"] == "healthy"
    assert status["health"]["health_score"] == 100

"""``POST /api/v1/configs/validate`` over a live server (SQLite and PostgreSQL): 200 when valid,
422 ``{"detail": {"message", "errors": [{"line", "column", "message"}]}}`` otherwise, also
against the components that OpAMP agents reported; org-scoped, viewers allowed."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.api import Org, new_org
from tests.support.polling import wait_for
from tests.support.server import LiveServer
from tests.support.ws_agent import WsAgent

VALID = """\
receivers:
  otlp:
    protocols:
      grpc: {}
processors:
  batch: {}
exporters:
  debug: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug]
"""
PATH = "/api/v1/configs/validate"


def check(org: Org, body: dict[str, Any], who: httpx.Client | None = None) -> httpx.Response:
    return (who or org.admin).post(PATH, params={"org_id": org.id}, json=body)


def test_a_valid_config_is_200(org: Org) -> None:
    resp = check(org, {"config_yaml": VALID})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"valid": True, "errors": []}


def test_invalid_yaml_is_422_with_line_and_column(org: Org) -> None:
    resp = check(org, {"config_yaml": "receivers:\n  otlp: {}\n  bad: [1, 2\n"})
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert detail["errors"] == [
        {
            "line": 4,
            "column": 1,
            "message": "not valid YAML: expected ',' or ']', but got '<stream end>'; "
            "while parsing a flow sequence",
        }
    ]
    assert detail["message"] == (
        "The configuration is not valid: not valid YAML: expected ',' or ']', but got "
        "'<stream end>'; while parsing a flow sequence (at line 4, column 1)"
    )


def test_every_error_is_listed(org: Org) -> None:
    text = VALID.replace("[batch]", "[batch, nope]") + "foo: 1\n"
    resp = check(org, {"config_yaml": text})
    assert resp.status_code == 422, resp.text
    errors = resp.json()["detail"]["errors"]
    assert [(e["line"], e["column"]) for e in errors] == [(13, 27), (15, 1)]
    assert "processor 'nope', which is not defined" in errors[0]["message"]
    assert resp.json()["detail"]["message"].endswith("(at line 13, column 27) and 1 more")
    assert check(org, {"config_yaml": ""}).json()["detail"]["errors"][0]["line"] == 1


def test_bad_bodies_are_422_in_the_request_shape(org: Org) -> None:
    for body in ({}, {"config_yaml": 5}, {"config_yaml": VALID, "gateway_ids": ["nope"]}):
        resp = check(org, body)
        assert resp.status_code == 422, resp.text
        assert isinstance(resp.json()["detail"], str)


def test_viewers_may_validate(org: Org) -> None:
    viewer = org.user("viewer")
    assert check(org, {"config_yaml": VALID}, viewer).status_code == 200
    assert check(org, {"config_yaml": "a: [\n"}, viewer).status_code == 422


def test_another_orgs_gateway_is_404(org: Org, server: LiveServer, superuser: httpx.Client) -> None:
    other = new_org(server, superuser).register()
    for gateway_id in (other["id"], str(uuid.uuid4())):
        resp = check(org, {"config_yaml": VALID, "gateway_ids": [gateway_id]})
        assert resp.status_code == 404, resp.text
        assert resp.json() == {"detail": "Gateway not found"}
    # A gateway that reported no components (a REST gateway) is not checked; nothing is stored.
    own = org.register()
    resp = check(org, {"config_yaml": VALID, "gateway_ids": [own["id"], own["id"]]})
    assert resp.status_code == 200, resp.text
    config = org.get(f"/api/v1/gateways/{own['id']}/config").json()
    assert config["source"] == "base"


def reported_components(org: Org, gateway_id: str) -> dict[str, Any] | None:
    status = org.get(f"/api/v1/gateways/{gateway_id}/status").json()
    available = (status.get("agent") or {}).get("available_components") or {}
    components: dict[str, Any] | None = available.get("components")
    return components


async def test_components_the_gateways_reported(org: Org) -> None:
    full = org.register(name="full-gw")
    lacking = org.register(name="lacking-gw")
    url = org.server.ws_url + "/v1/opamp"
    everything = {
        "receivers": {"otlp"},
        "processors": {"batch"},
        "exporters": {"debug", "otlp"},
        "connectors": set(),
        "extensions": set(),
    }
    without_debug = {**everything, "exporters": {"otlp"}}
    async with (
        WsAgent(url, full["opamp_token"], components=everything) as a,
        WsAgent(url, lacking["opamp_token"], components=without_debug) as b,
    ):
        for agent in (a, b):
            reply = await agent.request(agent.full_state())
            assert not reply.HasField("error_response"), reply
        for gw in (full, lacking):
            await asyncio.to_thread(wait_for, lambda gw=gw: reported_components(org, gw["id"]))

    resp = await asyncio.to_thread(check, org, {"config_yaml": VALID, "gateway_ids": [full["id"]]})
    assert resp.status_code == 200, resp.text

    resp = await asyncio.to_thread(
        check, org, {"config_yaml": VALID, "gateway_ids": [full["id"], lacking["id"]]}
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"]["errors"] == [
        {
            "line": 8,
            "column": 3,
            "message": f"gateway 'lacking-gw' ({lacking['id']}): exporter 'debug': type 'debug' "
            "is not available (this collector has no exporter of that type)",
        }
    ]
    # A config that is invalid anyway reports its own errors, not the gateways'.
    resp = await asyncio.to_thread(
        check, org, {"config_yaml": VALID + "foo: 1\n", "gateway_ids": [lacking["id"]]}
    )
    assert [e["line"] for e in resp.json()["detail"]["errors"]] == [15]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.one_of(
        st.text(max_size=200),
        st.lists(
            st.sampled_from(["receivers:", "\n  ", "[", "]", "&a ", "*a", "- ", "\t", ": "])
        ).map("".join),
    )
)
def test_any_text_is_200_or_422_never_5xx(org: Org, text: str) -> None:
    resp = check(org, {"config_yaml": text})
    assert resp.status_code in (200, 422), resp.text
    if resp.status_code == 422 and isinstance(resp.json()["detail"], dict):
        assert all(e["line"] >= 1 and e["column"] >= 1 for e in resp.json()["detail"]["errors"])

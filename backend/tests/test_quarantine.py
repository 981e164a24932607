"""Stored JSON that cannot be served never fails a whole list: migration 0002 and
``flowgate db check`` move it to ``quarantined_values``, and a bad row that is read anyway is
served as ``{}`` with a warning naming it."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command

from flowgate.core.migrate import alembic_config
from tests.support.api import Org, new_org, superuser_client
from tests.support.db import execute, fetch_row, is_postgres, query, wait_flushed
from tests.support.server import LiveServer

DEEP_940 = '{"a": ' * 939 + "{}" + "}" * 939
# Decodes nowhere: json.loads refuses integers of more than 4300 digits (PostgreSQL's jsonb
# stores it as numeric and prints every digit back).
HUGE_INT = '{"n": 1' + "0" * 5000 + "}"


def database_url(server: LiveServer) -> str:
    return server.database_url or f"sqlite+aiosqlite:///{server.data_dir / 'flowgate.db'}"


def write_raw(server: LiveServer, gateway_id: str, column: str, text: str | bytes) -> None:
    """Put JSON text into a column as the database stores it, bypassing every check."""
    assert column.isidentifier()
    if is_postgres(server):
        execute(
            server, f"UPDATE gateways SET {column} = ?::jsonb WHERE id = ?::uuid", text, gateway_id
        )
    else:
        # CAST(... AS TEXT) keeps bytes that are not UTF-8 as they are, in a TEXT value.
        execute(
            server,
            f"UPDATE gateways SET {column} = CAST(? AS TEXT) WHERE id = ?",
            text,
            gateway_id.replace("-", ""),
        )


def quarantined(server: LiveServer) -> dict[tuple[str, str], tuple[str, str]]:
    rows = query(
        server, "SELECT row_id, column_name, raw, reason, table_name FROM quarantined_values"
    )
    assert all(row[4] == "gateways" for row in rows)
    return {(str(row[0]), str(row[1])): (str(row[2]), str(row[3])) for row in rows}


def stored(server: LiveServer, gateway_id: str, column: str) -> Any:
    (value,) = fetch_row(server, "gateways", gateway_id, column)
    return value


def assert_readable(org: Org, *gateway_ids: str) -> list[dict[str, Any]]:
    listing = org.get("/api/v1/gateways")
    assert listing.status_code == 200, listing.text[:300]
    for gid in gateway_ids:
        for suffix in ("", "/status"):
            resp = org.get(f"/api/v1/gateways/{gid}{suffix}")
            assert resp.status_code == 200, (suffix, resp.text[:300])
    items: list[dict[str, Any]] = listing.json()["items"]
    return items


def test_migration_0002_quarantines_values_stored_before_the_checks(make_server: Any) -> None:
    server: LiveServer = make_server()
    with superuser_client(server) as su:
        org = new_org(server, su)
        good = org.register(labels={"keep": "me"}, metadata={"version": "1.2.3"})
        deep, huge, listy, binary = (org.register() for _ in range(4))
        server.stop()
        # Back to before 0002, and into the state the old code could leave behind.
        command.downgrade(alembic_config(database_url(server)), "0001")
        metadata = '{"version": "1", "metrics": ' + DEEP_940 + "}"
        write_raw(server, deep["id"], "extra_metadata", metadata)
        write_raw(server, huge["id"], "labels", HUGE_INT)
        write_raw(server, listy["id"], "opamp_state", "[1, 2]")
        expected = {
            (deep["id"], "extra_metadata"): "extra_metadata: nested deeper than 33 levels at "
            "extra_metadata.metrics.a.a",
            (huge["id"], "labels"): "labels: cannot be decoded",
            (listy["id"], "opamp_state"): "opamp_state: not a JSON object",
        }
        if not is_postgres(server):
            # Not UTF-8 at all: on SQLite this fails the read itself, before any decoding.
            write_raw(server, binary["id"], "labels", b'{"a": "\xff"}')
            expected[(binary["id"], "labels")] = "labels: not valid UTF-8"
        server.start()  # runs migration 0002

        found = quarantined(server)
        assert set(found) == set(expected)
        for key, reason in expected.items():
            assert found[key][1].startswith(reason), found[key][1]
            assert stored(server, *key) in ("{}", {})
        assert found[(huge["id"], "labels")][0] == HUGE_INT
        assert found[(listy["id"], "opamp_state")][0].replace(" ", "") == "[1,2]"
        raw_metadata = found[(deep["id"], "extra_metadata")][0].replace(" ", "")
        # PostgreSQL's jsonb orders keys its own way; the text is otherwise what was stored.
        assert raw_metadata.count('{"a":') == 939 and '"version":"1"' in raw_metadata
        ids = [gw["id"] for gw in (good, deep, huge, listy, binary)]
        items = assert_readable(org, *ids)
        assert {g["id"]: g["labels"] for g in items}[good["id"]] == {"keep": "me"}
        version = org.get(f"/api/v1/gateways/{good['id']}/version").json()
        assert version["agent_version"] == "1.2.3"
        # Nothing is left to find, and the gateways work on.
        result = server.cli("db", "check")
        assert (result.stdout, "no bad values found" in result.stderr) == ("", True)
        for gw in (deep, huge, listy, binary):
            assert org.heartbeat(gw, {"metrics": {"logs_processed": 1}}).status_code == 200
        wait_flushed(org)
        assert_readable(org, *ids)


def test_undecodable_rows_are_served_as_empty_and_db_check_quarantines_them(
    server: LiveServer, org: Org
) -> None:
    gw = org.register(labels={"team": "a"})
    other = org.register(labels={"team": "b"})
    write_raw(server, gw["id"], "labels", HUGE_INT)
    bad = [(gw["id"], "labels")]
    if not is_postgres(server):
        # SQLite stores JSON as text: nesting past the decoder's reach, and bytes that are not
        # UTF-8 (which would fail the read itself, not only the decoding).
        write_raw(server, other["id"], "extra_metadata", "[" * 5000 + "]" * 5000)
        bad.append((other["id"], "extra_metadata"))
    items = assert_readable(org, gw["id"], other["id"])
    labels = {g["id"]: g["labels"] for g in items}
    assert labels == {gw["id"]: {}, other["id"]: {"team": "b"}}
    log = server.full_log()
    warnings = [line for line in log.splitlines() if "could not be decoded" in line]
    assert any(gw["id"] in line and '"column":"labels"' in line for line in warnings), warnings[-3:]

    # An alert rule's channel list is a JSON array: valid data, which the scan must leave alone.
    hook = org.admin.post(
        "/api/v1/notification-channels",
        params={"org_id": org.id},
        json={"name": "hook", "url": "http://127.0.0.1:9/hook"},
    )
    assert hook.status_code == 201, hook.text
    rule = org.admin.post(
        "/api/v1/alert-rules",
        params={"org_id": org.id},
        json={
            "name": "r",
            "kind": "token_expiring",
            "hours": 24,
            "channel_ids": [hook.json()["id"]],
        },
    )
    assert rule.status_code == 201, rule.text

    result = server.cli("db", "check")
    lines = set(result.stdout.splitlines())
    assert not any(line.startswith("alert_rules\t") for line in lines), lines
    for gid, column in bad:
        assert any(line.startswith(f"gateways\t{gid}\t{column}\t") for line in lines), lines
    found = quarantined(server)
    assert found[(gw["id"], "labels")] == (HUGE_INT, found[(gw["id"], "labels")][1])
    assert "cannot be decoded" in found[(gw["id"], "labels")][1]
    for gid, column in bad:
        assert stored(server, gid, column) in ("{}", {})
    assert "value(s) quarantined" in result.stderr
    # A second run finds nothing of these, and the fleet reads and writes as usual.
    again = server.cli("db", "check")
    assert not any(gw["id"] in line or other["id"] in line for line in again.stdout.splitlines())
    assert org.heartbeat(gw).status_code == 200
    resp = org.admin.patch(
        f"/api/v1/gateways/{gw['id']}", params={"org_id": org.id}, json={"labels": {"x": "y"}}
    )
    assert resp.status_code == 200 and resp.json()["labels"] == {"x": "y"}
    assert_readable(org, gw["id"], other["id"])
    shown = org.get(f"/api/v1/alert-rules/{rule.json()['id']}").json()
    assert shown["channel_ids"] == [hook.json()["id"]]


def test_db_check_reads_text_that_is_not_utf8(server: LiveServer, org: Org) -> None:
    if is_postgres(server):
        pytest.skip("PostgreSQL never stores text that is not UTF-8")
    gw = org.register()
    write_raw(server, gw["id"], "labels", b'{"a": "\xff\xfe"}')
    result = server.cli("db", "check")
    assert f"gateways\t{gw['id']}\tlabels\tlabels: not valid UTF-8" in result.stdout
    raw, _ = quarantined(server)[(gw["id"], "labels")]
    assert raw == '{"a": "\ufffd\ufffd"}'
    assert stored(server, gw["id"], "labels") == "{}"
    assert_readable(org, gw["id"])

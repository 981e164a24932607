"""Configuration templates: CRUD scoped to the organisation, immutable numbered versions
(validated, hashed, numbered atomically under concurrency), paging, diffs, roles, and the CLI."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from flowgate.configs.base import config_hash
from flowgate.configs.versions import unified_diff
from tests.support.api import Org, client, login, new_org
from tests.support.db import query
from tests.support.server import ADMIN_EMAIL, ADMIN_PASSWORD, LiveServer

V1 = """\
receivers:
  otlp:
    protocols:
      grpc: {}
exporters:
  debug: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [debug]
"""
V2 = V1.replace("  debug: {}\n", "  debug:\n    verbosity: detailed\n") + (
    "    metrics:\n      receivers: [otlp]\n      exporters: [debug]\n"
)
# Written out by hand: labels v1/v2, one hunk, three lines of context on each side.
V1_TO_V2 = """\
--- v1
+++ v2
@@ -3,9 +3,13 @@
     protocols:
       grpc: {}
 exporters:
-  debug: {}
+  debug:
+    verbosity: detailed
 service:
   pipelines:
     traces:
       receivers: [otlp]
       exporters: [debug]
+    metrics:
+      receivers: [otlp]
+      exporters: [debug]
"""
# A mapping value where none may start: PyYAML points at line 5, column 8.
BROKEN_YAML = "receivers:\n  otlp: {}\nexporters:\n  debug: {}\n  bad: : x\n"


def body_n(n: int) -> str:
    """A distinct valid collector config per ``n``."""
    return V1.replace("grpc: {}", f"grpc:\n        endpoint: 0.0.0.0:{4000 + n}")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def create(org: Org, name: str | None = None, **body: Any) -> dict[str, Any]:
    body["name"] = name or f"cfg-{uuid.uuid4().hex[:8]}"
    resp = org.admin.post("/api/v1/configs", params={"org_id": org.id}, json=body)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


def push(org: Org, config_id: str, text: str, **body: Any) -> httpx.Response:
    return org.admin.post(
        f"/api/v1/configs/{config_id}/versions",
        params={"org_id": org.id},
        json={"config_yaml": text, **body},
    )


def stored_versions(server: LiveServer, config_id: str) -> list[int]:
    rows = query(
        server,
        "SELECT version FROM config_versions WHERE template_id = ? ORDER BY version",
        uuid.UUID(config_id),
    )
    return [row[0] for row in rows]


def test_templates_are_created_listed_renamed_and_deleted_with_their_versions(
    org: Org, server: LiveServer
) -> None:
    me = org.admin.get("/api/v1/auth/me").json()
    created = create(org, "zeta", description="edge gateways")
    assert created["org_id"] == org.id
    assert (created["name"], created["description"], created["latest_version"]) == (
        "zeta",
        "edge gateways",
        None,
    )
    assert created["created_by"] == me["id"]
    assert created["created_at"] and created["updated_at"]
    alpha = create(org, "  alpha  ")  # surrounding whitespace is not part of a name
    assert alpha["name"] == "alpha"

    assert push(org, created["id"], V1).status_code == 201
    pushed = org.get(f"/api/v1/configs/{created['id']}").json()
    # A new version is a change of the template.
    assert parse_time(pushed["updated_at"]) > parse_time(created["updated_at"])
    assert pushed["created_at"] == created["created_at"]
    listed = org.get("/api/v1/configs").json()
    assert [(t["name"], t["latest_version"]) for t in listed] == [("alpha", None), ("zeta", 1)]
    assert org.get(f"/api/v1/configs/{created['id']}").json()["latest_version"] == 1

    patched = org.admin.patch(
        f"/api/v1/configs/{created['id']}",
        params={"org_id": org.id},
        json={"name": "omega", "description": None},
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["name"], patched.json()["description"]) == ("omega", None)
    assert patched.json()["latest_version"] == 1
    assert org.get(f"/api/v1/configs/{created['id']}").json()["name"] == "omega"
    only_description = org.admin.patch(
        f"/api/v1/configs/{created['id']}", params={"org_id": org.id}, json={"description": "d"}
    )
    assert (only_description.json()["name"], only_description.json()["description"]) == (
        "omega",
        "d",
    )
    for bad in ({"name": None}, {"name": "   "}, {"name": "x" * 201}, {"name": ""}):
        resp = org.admin.patch(
            f"/api/v1/configs/{created['id']}", params={"org_id": org.id}, json=bad
        )
        assert resp.status_code == 422, (bad, resp.text)

    deleted = org.admin.delete(f"/api/v1/configs/{created['id']}", params={"org_id": org.id})
    assert deleted.status_code == 204
    assert org.get(f"/api/v1/configs/{created['id']}").status_code == 404
    assert org.get(f"/api/v1/configs/{created['id']}/versions/1").status_code == 404
    assert stored_versions(server, created["id"]) == []  # versions went with it
    again = org.admin.delete(f"/api/v1/configs/{created['id']}", params={"org_id": org.id})
    assert again.status_code == 404
    assert [t["name"] for t in org.get("/api/v1/configs").json()] == ["alpha"]


def test_a_name_is_unique_within_an_organization(org: Org, superuser: httpx.Client) -> None:
    create(org, "shared")
    duplicate = org.admin.post(
        "/api/v1/configs", params={"org_id": org.id}, json={"name": "shared"}
    )
    assert duplicate.status_code == 409
    assert "already exists" in duplicate.json()["detail"]
    other = create(org, "other")
    rename = org.admin.patch(
        f"/api/v1/configs/{other['id']}", params={"org_id": org.id}, json={"name": "shared"}
    )
    assert rename.status_code == 409
    same = org.admin.patch(
        f"/api/v1/configs/{other['id']}", params={"org_id": org.id}, json={"name": "other"}
    )
    assert same.status_code == 200  # keeping one's own name is no conflict
    second = new_org(org.server, superuser)
    assert create(second, "shared")["org_id"] == second.id  # another org may use it


def test_concurrent_creates_of_one_name_make_one_template(org: Org, server: LiveServer) -> None:
    token = org.admin.headers["Authorization"]
    workers = 8
    barrier = threading.Barrier(workers)

    def post(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, headers={"Authorization": token}, timeout=60) as h:
            h.get("/healthz")
            barrier.wait()
            return h.post("/api/v1/configs", params={"org_id": org.id}, json={"name": "race"})

    with ThreadPoolExecutor(workers) as pool:
        codes = sorted(a.status_code for a in pool.map(post, range(workers)))
    assert codes == [201] + [409] * (workers - 1)
    assert [t["name"] for t in org.get("/api/v1/configs").json()] == ["race"]


def test_versions_are_numbered_hashed_and_attributed(org: Org, server: LiveServer) -> None:
    me = org.admin.get("/api/v1/auth/me").json()
    template = create(org)
    for n in (1, 2, 3):
        resp = push(org, template["id"], body_n(n), message=f"change {n}")
        assert resp.status_code == 201, resp.text
        version = resp.json()
        assert version["version"] == n
        assert version["config_id"] == template["id"]
        assert version["config_yaml"] == body_n(n)
        assert version["content_type"] == "text/yaml"
        assert version["config_hash"] == config_hash(body_n(n), "text/yaml")
        assert version["message"] == f"change {n}"
        assert version["created_by"] == me["id"]
        assert version["created_at"]
    assert org.get(f"/api/v1/configs/{template['id']}").json()["latest_version"] == 3
    second = org.get(f"/api/v1/configs/{template['id']}/versions/2").json()
    assert (second["version"], second["config_yaml"], second["message"]) == (
        2,
        body_n(2),
        "change 2",
    )
    assert org.get(f"/api/v1/configs/{template['id']}/versions/4").status_code == 404
    assert org.get(f"/api/v1/configs/{template['id']}/versions/0").status_code == 422
    assert org.get(f"/api/v1/configs/{template['id']}/versions/x").status_code == 422
    assert org.get(f"/api/v1/configs/{template['id']}/versions/{2**40}").status_code == 422
    assert org.get(f"/api/v1/configs/{uuid.uuid4()}/versions/1").status_code == 404
    assert push(org, str(uuid.uuid4()), V1).status_code == 404
    assert stored_versions(server, template["id"]) == [1, 2, 3]

    as_json = push(org, template["id"], '{"receivers": {}}', content_type="application/json")
    assert as_json.status_code == 201, as_json.text
    assert as_json.json()["version"] == 4
    assert as_json.json()["config_hash"] == config_hash('{"receivers": {}}', "application/json")
    assert push(org, template["id"], V1, content_type="text/plain").status_code == 422


def test_a_version_identical_to_the_latest_is_refused(org: Org, server: LiveServer) -> None:
    template = create(org)
    assert push(org, template["id"], V1).json()["version"] == 1
    same = push(org, template["id"], V1, message="no change")
    assert same.status_code == 409
    assert "identical to version 1" in same.json()["detail"].lower()
    assert stored_versions(server, template["id"]) == [1]
    assert org.get(f"/api/v1/configs/{template['id']}").json()["latest_version"] == 1
    # The number given back by the refusal is used by the next version.
    assert push(org, template["id"], V2).json()["version"] == 2
    # Going back to an older body is a change.
    assert push(org, template["id"], V1).json()["version"] == 3
    assert stored_versions(server, template["id"]) == [1, 2, 3]


def test_an_invalid_body_is_422_with_line_and_column_and_stores_nothing(
    org: Org, server: LiveServer
) -> None:
    template = create(org)
    assert push(org, template["id"], V1).status_code == 201

    broken = push(org, template["id"], BROKEN_YAML)
    assert broken.status_code == 422, broken.text
    detail = broken.json()["detail"]
    assert isinstance(detail["message"], str) and detail["message"]
    assert [(e["line"], e["column"]) for e in detail["errors"]] == [(5, 8)]
    assert "not valid YAML" in detail["errors"][0]["message"]

    incomplete = push(org, template["id"], "receivers:\n  otlp: {}\n")
    assert incomplete.status_code == 422
    errors = incomplete.json()["detail"]["errors"]
    assert [(e["line"], e["column"]) for e in errors] == [(1, 1), (1, 1)]
    assert all("missing section" in e["message"] for e in errors)

    not_json = push(org, template["id"], '{"a": 1,\n "b": }', content_type="application/json")
    assert not_json.status_code == 422
    assert [(e["line"], e["column"]) for e in not_json.json()["detail"]["errors"]] == [(2, 7)]
    array = push(org, template["id"], "[1, 2]", content_type="application/json")
    assert array.status_code == 422
    assert "JSON object" in array.json()["detail"]["errors"][0]["message"]

    assert push(org, template["id"], "").status_code == 422
    assert stored_versions(server, template["id"]) == [1]
    assert org.get(f"/api/v1/configs/{template['id']}").json()["latest_version"] == 1


def test_concurrent_versions_get_distinct_consecutive_numbers(org: Org, server: LiveServer) -> None:
    template = create(org)
    token = org.admin.headers["Authorization"]
    workers = 10
    barrier = threading.Barrier(workers)

    def post(n: int) -> httpx.Response:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": token}, timeout=60
        ) as http:
            http.get("/healthz")  # connect before the barrier, so the posts start together
            barrier.wait()
            return http.post(
                f"/api/v1/configs/{template['id']}/versions",
                params={"org_id": org.id},
                json={"config_yaml": body_n(n)},
            )

    with ThreadPoolExecutor(workers) as pool:
        answers = list(pool.map(post, range(workers)))
    assert [a.status_code for a in answers] == [201] * workers, [a.text for a in answers]
    numbers = sorted(a.json()["version"] for a in answers)
    assert numbers == list(range(1, workers + 1))
    assert stored_versions(server, template["id"]) == numbers
    assert org.get(f"/api/v1/configs/{template['id']}").json()["latest_version"] == workers


def test_no_route_changes_or_removes_a_version(org: Org) -> None:
    template = create(org)
    push(org, template["id"], V1)
    path = f"/api/v1/configs/{template['id']}/versions/1"
    for method in ("PUT", "PATCH", "DELETE"):
        resp = org.admin.request(
            method, path, params={"org_id": org.id}, json={"config_yaml": V2, "message": "x"}
        )
        assert resp.status_code == 405, (method, resp.text)
        assert "detail" in resp.json()
    for method in ("PUT", "PATCH", "DELETE"):
        resp = org.admin.request(
            method, f"/api/v1/configs/{template['id']}/versions", params={"org_id": org.id}
        )
        assert resp.status_code == 405, (method, resp.text)
    unchanged = org.get(path).json()
    assert (unchanged["config_yaml"], unchanged["message"]) == (V1, None)


def test_versions_are_listed_newest_first_in_pages_without_bodies(org: Org) -> None:
    template = create(org)
    for n in range(1, 6):
        assert push(org, template["id"], body_n(n), message=f"m{n}").status_code == 201
    base = f"/api/v1/configs/{template['id']}/versions"
    page = org.get(base, limit=2).json()
    assert [v["version"] for v in page["items"]] == [5, 4]
    assert page["next_before"] == 4
    item = page["items"][0]
    assert "config_yaml" not in item
    assert item["config_hash"] == config_hash(body_n(5))
    assert (item["message"], item["config_id"]) == ("m5", template["id"])
    page = org.get(base, limit=2, before=page["next_before"]).json()
    assert ([v["version"] for v in page["items"]], page["next_before"]) == ([3, 2], 2)
    page = org.get(base, limit=2, before=2).json()
    assert ([v["version"] for v in page["items"]], page["next_before"]) == ([1], None)
    everything = org.get(base).json()
    assert [v["version"] for v in everything["items"]] == [5, 4, 3, 2, 1]
    assert everything["next_before"] is None
    for bad in ({"limit": 0}, {"limit": 501}, {"before": 0}, {"before": "x"}):
        assert org.get(base, **bad).status_code == 422, bad
    empty = create(org)
    assert org.get(f"/api/v1/configs/{empty['id']}/versions").json() == {
        "items": [],
        "next_before": None,
    }


def test_diff_is_a_unified_diff_between_two_versions(org: Org) -> None:
    template = create(org)
    push(org, template["id"], V1)
    push(org, template["id"], V2)
    path = f"/api/v1/configs/{template['id']}/diff"
    forward = org.get(path, **{"from": 1, "to": 2})
    assert forward.status_code == 200, forward.text
    assert forward.json() == {"from": 1, "to": 2, "diff": V1_TO_V2}
    backward = org.get(path, **{"from": 2, "to": 1}).json()
    assert backward["diff"].startswith("--- v2\n+++ v1\n@@ -3,13 +3,9 @@\n")
    assert "\n+  debug: {}\n" in backward["diff"]
    assert org.get(path, **{"from": 2, "to": 2}).json() == {"from": 2, "to": 2, "diff": ""}
    missing = org.get(path, **{"from": 1, "to": 3})
    assert missing.status_code == 404
    assert "Version 3" in missing.json()["detail"]
    for bad in ({"from": 1}, {"to": 1}, {"from": "a", "to": 1}, {"from": 0, "to": 1}):
        assert org.get(path, **bad).status_code == 422, bad
    assert (
        org.get(f"/api/v1/configs/{uuid.uuid4()}/diff", **{"from": 1, "to": 2}).status_code == 404
    )


def test_a_last_line_without_newline_is_marked_as_diff_does() -> None:
    assert unified_diff("a\nb", "a\nc", "v1", "v2") == (
        "--- v1\n+++ v2\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n"
        "+c\n\\ No newline at end of file\n"
    )


def test_another_organizations_templates_are_not_found(
    org: Org, server: LiveServer, superuser: httpx.Client
) -> None:
    template = create(org)
    push(org, template["id"], V1)
    push(org, template["id"], V2)
    other = new_org(server, superuser)
    outsider = other.user("admin")  # admin of the other org only
    base = f"/api/v1/configs/{template['id']}"
    calls = [
        ("GET", base, None, {}),
        ("PATCH", base, {"name": "stolen"}, {}),
        ("DELETE", base, None, {}),
        ("POST", f"{base}/versions", {"config_yaml": body_n(9)}, {}),
        ("GET", f"{base}/versions", None, {}),
        ("GET", f"{base}/versions/1", None, {}),
        ("GET", f"{base}/diff", None, {"from": 1, "to": 2}),
    ]
    for method, path, body, params in calls:
        for http, extra in ((outsider, {}), (superuser, {"org_id": other.id})):
            resp = http.request(method, path, json=body, params={**params, **extra})
            assert resp.status_code == 404, (method, path, resp.text)
    assert outsider.get("/api/v1/configs").json() == []
    # Nothing changed in the owner's organisation.
    kept = org.get(base).json()
    assert (kept["name"], kept["latest_version"]) == (template["name"], 2)
    assert stored_versions(server, template["id"]) == [1, 2]


def test_viewers_read_and_operators_write(org: Org) -> None:
    template = create(org)
    push(org, template["id"], V1)
    push(org, template["id"], V2)
    viewer = org.user("viewer")
    base = f"/api/v1/configs/{template['id']}"
    reads = [
        ("/api/v1/configs", {}),
        (base, {}),
        (f"{base}/versions", {}),
        (f"{base}/versions/2", {}),
        (f"{base}/diff", {"from": 1, "to": 2}),
    ]
    for path, params in reads:
        assert viewer.get(path, params=params).status_code == 200, path
    writes = [
        ("POST", "/api/v1/configs", {"name": "by-viewer"}),
        ("PATCH", base, {"name": "by-viewer"}),
        ("DELETE", base, None),
        ("POST", f"{base}/versions", {"config_yaml": body_n(7)}),
    ]
    for method, path, body in writes:
        resp = viewer.request(method, path, json=body)
        assert resp.status_code == 403, (method, path, resp.text)
    assert org.get(base).json()["latest_version"] == 2

    operator = org.user("operator")
    made = operator.post("/api/v1/configs", json={"name": "by-operator"})
    assert made.status_code == 201
    added = operator.post(f"/api/v1/configs/{made.json()['id']}/versions", json={"config_yaml": V1})
    assert added.status_code == 201
    renamed = operator.patch(f"/api/v1/configs/{made.json()['id']}", json={"name": "renamed"})
    assert renamed.status_code == 200
    assert operator.delete(f"/api/v1/configs/{made.json()['id']}").status_code == 204
    assert client(org.server).get("/api/v1/configs").status_code == 401


def test_cli_creates_pushes_lists_and_diffs(org: Org, server: LiveServer, tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    created = server.cli(
        "configs", "create", name, "--description", "from the CLI", "--org", org.name
    )
    config_id = str(uuid.UUID(created.stdout.strip()))
    assert created.stdout == f"{config_id}\n"
    first, second, broken = tmp_path / "v1.yaml", tmp_path / "v2.yaml", tmp_path / "bad.yaml"
    first.write_text(V1)
    second.write_text(V2)
    broken.write_text(BROKEN_YAML)

    one = server.cli("configs", "push-version", name, "--file", str(first), "--org", org.name)
    assert one.stdout == "1\n"
    two = server.cli(
        "configs", "push-version", config_id, "--file", str(second), "--message", "verbose",
        "--org", org.name,
    )  # fmt: skip
    assert two.stdout == "2\n"
    stored = org.get(f"/api/v1/configs/{config_id}/versions/2").json()
    assert (stored["config_yaml"], stored["message"]) == (V2, "verbose")
    assert stored["config_hash"] == config_hash(V2)

    bad = server.cli(
        "configs", "push-version", name, "--file", str(broken), "--org", org.name, check=False
    )
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert bad.stderr.splitlines() == ["5:8: not valid YAML: mapping values are not allowed here"]
    same = server.cli(
        "configs", "push-version", name, "--file", str(second), "--org", org.name, check=False
    )
    assert (same.returncode, same.stdout) == (1, "")
    assert "Identical to version 2" in same.stderr
    assert stored_versions(server, config_id) == [1, 2]

    listed = server.cli("configs", "list", "--org", org.name)
    assert listed.stdout == f"{config_id}\t{name}\t2\n"
    diff = server.cli("configs", "diff", name, "1", "2", "--org", org.name)
    assert diff.stdout == V1_TO_V2
    assert server.cli("configs", "diff", config_id, "2", "2", "--org", org.name).stdout == ""
    missing = server.cli("configs", "diff", name, "1", "9", "--org", org.name, check=False)
    assert (missing.returncode, missing.stdout) == (1, "")
    assert "Version 9" in missing.stderr

    # The server holds several organisations: the CLI will not guess which one.
    unnamed = server.cli("configs", "list", check=False)
    assert unnamed.returncode == 1
    assert "--org" in unnamed.stderr
    unknown = server.cli(
        "configs", "diff", "no-such-config", "1", "2", "--org", org.name, check=False
    )
    assert unknown.returncode == 1
    assert "not found" in unknown.stderr


def test_cli_uses_the_only_organization_by_default(make_server: Any, tmp_path: Path) -> None:
    fresh: LiveServer = make_server()  # just the bootstrapped "default" organisation
    config_id = fresh.cli("configs", "create", "solo").stdout.strip()
    file = tmp_path / "c.yaml"
    file.write_text(V1)
    assert fresh.cli("configs", "push-version", "solo", "--file", str(file)).stdout == "1\n"
    with client(fresh, login(fresh, ADMIN_EMAIL, ADMIN_PASSWORD)) as admin:
        listed = admin.get("/api/v1/configs").json()
    assert [(t["id"], t["name"], t["latest_version"]) for t in listed] == [(config_id, "solo", 1)]

"""A revoked OpAMP token stops working the moment the revoking request answers, even while the
gateway keeps heartbeating (the token cache must not re-learn the old token)."""

from __future__ import annotations

import threading

import httpx

from tests.support.api import Org


def test_deactivate_and_reregister_revoke_at_once_under_heartbeats(org: Org) -> None:
    token = org.registration_token(max_uses=None)
    for _round in range(5):
        gw = org.register("racer", token=token)
        stop = threading.Event()

        def hammer(opamp_token: str = gw["opamp_token"], stop: threading.Event = stop) -> None:
            with httpx.Client(base_url=org.server.url) as client:
                while not stop.is_set():
                    client.post(
                        "/api/v1/opamp/heartbeat/racer",
                        headers={"Authorization": f"Bearer {opamp_token}"},
                    )

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            resp = org.admin.post(
                f"/api/v1/gateways/{gw['id']}/deactivate", params={"org_id": org.id}
            )
            assert resp.status_code == 200
            for _ in range(5):
                assert org.heartbeat(gw).status_code == 401
        finally:
            stop.set()
            for t in threads:
                t.join()
        # Re-registering issues a fresh token; the previous one is dead at once as well.
        again = org.register("racer", token=token)
        assert org.heartbeat(again).status_code == 200
        assert org.heartbeat(gw).status_code == 401
        org.admin.post(f"/api/v1/gateways/{again['id']}/deactivate", params={"org_id": org.id})

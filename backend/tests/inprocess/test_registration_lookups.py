"""Registration-token checks of OpAMP peers (flowgate.opamp.auth), in this process: a fleet
sharing one token whose cached check has expired makes one lookup, not one per agent, and a
revocation during that lookup keeps its answer out of the cache."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from flowgate.core.db import utcnow
from flowgate.core.errors import InvalidRegistrationToken, NotAuthenticated
from flowgate.core.settings import Settings
from flowgate.gateways.identity import IdentityCache
from flowgate.opamp import auth
from flowgate.opamp.auth import Admission, Authenticator


@dataclass
class Record:
    id: uuid.UUID
    org_id: uuid.UUID
    expires_at: Any


class Lookups:
    """Stands in for the token table: counts lookups, each held until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()  # every lookup, now and later
        self.gates: list[asyncio.Event] = []  # one lookup each, in the order they started
        self.record = Record(uuid.uuid4(), uuid.uuid4(), utcnow() + timedelta(days=1))

    async def find_usable(self, _session: object, plain: str) -> Record:
        self.calls += 1
        gate = asyncio.Event()
        self.gates.append(gate)
        waits = {asyncio.ensure_future(self.release.wait()), asyncio.ensure_future(gate.wait())}
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if plain != "fleet-token":
            raise InvalidRegistrationToken()
        return self.record


@dataclass
class _Uow:
    session: object = None


@contextlib.asynccontextmanager
async def unit_of_work() -> AsyncIterator[_Uow]:
    yield _Uow()


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Lookups:
    found = Lookups()
    monkeypatch.setattr(auth.tokens, "find_usable", found.find_usable)
    return found


def authenticator() -> Authenticator:
    settings = Settings(environment="test", secret_key="s" * 48, public_url="http://test")
    return Authenticator(
        settings,
        IdentityCache(settings.signing_key),
        unit_of_work,
        Admission(2, 10),  # type: ignore[arg-type]
    )


async def test_agents_arriving_together_share_one_lookup(lookups: Lookups) -> None:
    checker = authenticator()
    waiting = [asyncio.ensure_future(checker.authenticate("fleet-token")) for _ in range(50)]
    await asyncio.sleep(0.05)
    lookups.release.set()
    creds = await asyncio.gather(*waiting)
    assert lookups.calls == 1  # fifty agents, one lookup; before, one each past the queue limit
    assert {c.org_id for c in creds} == {lookups.record.org_id}
    await checker.authenticate("fleet-token")
    assert lookups.calls == 1  # and then cached


async def test_a_bad_token_fails_every_waiter(lookups: Lookups) -> None:
    checker = authenticator()
    waiting = [asyncio.ensure_future(checker.authenticate("wrong")) for _ in range(5)]
    await asyncio.sleep(0.01)
    lookups.release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, NotAuthenticated) for r in results)
    assert lookups.calls == 1


async def test_a_revocation_during_the_lookup_keeps_its_answer_out_of_the_cache(
    lookups: Lookups,
) -> None:
    checker = authenticator()
    first = asyncio.ensure_future(checker.authenticate("fleet-token"))
    await asyncio.sleep(0.01)
    checker.forget_registration_tokens()  # a token was revoked while the lookup ran
    lookups.release.set()
    await first
    await checker.authenticate("fleet-token")
    assert lookups.calls == 2  # looked up again, not trusted from before the revocation


async def test_a_lookup_from_before_a_revocation_does_not_end_the_newer_one(
    lookups: Lookups,
) -> None:
    checker = authenticator()
    old = asyncio.ensure_future(checker.authenticate("fleet-token"))
    await asyncio.sleep(0.01)
    checker.forget_registration_tokens()
    newer = asyncio.ensure_future(checker.authenticate("fleet-token"))  # its own lookup
    await asyncio.sleep(0.01)
    assert lookups.calls == 2
    lookups.gates[0].set()
    await old  # finishing, the old lookup must leave the newer one in place for later agents
    late = asyncio.ensure_future(checker.authenticate("fleet-token"))
    await asyncio.sleep(0.01)
    lookups.release.set()
    await asyncio.gather(newer, late)
    assert lookups.calls == 2, "the agent arriving during the newer lookup made a third one"

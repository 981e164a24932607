"""Typed domain events: what happened, after it was committed.

Events are queued on the unit of work (:mod:`flowgate.core.uow`) and published only after its
transaction commits, in the order they were queued. The bus (:mod:`flowgate.fleet.bus`) delivers
them to this replica's subscribers and, through Redis, to every other replica's, so each replica
drops its caches and closes the connections an event concerns. An event carries identifiers
only, never secrets, so it can cross the wire as JSON.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, uuid.UUID):
                value = str(value)
            elif isinstance(value, tuple):
                value = [str(v) for v in value]
            body[f.name] = value
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Self:
        """Rebuild the event from :meth:`to_json`'s output; raises ``ValueError`` on a bad body."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = body.get(f.name)
            if f.type in ("uuid.UUID", uuid.UUID):
                values[f.name] = uuid.UUID(str(raw))
            elif str(f.type).startswith("tuple"):
                values[f.name] = tuple(uuid.UUID(str(v)) for v in raw or ())
            else:
                values[f.name] = raw
        return cls(**values)


@dataclass(frozen=True)
class GatewayRevoked(Event):
    """The gateway's OpAMP credential no longer works: it was deactivated or deleted."""

    kind: ClassVar[str] = "gateway.revoked"
    gateway_id: uuid.UUID
    org_id: uuid.UUID
    reason: str  # "deactivated" | "deleted"


@dataclass(frozen=True)
class GatewayTokenSuperseded(Event):
    """A new OpAMP token was issued (re-registration): the previous one stopped working."""

    kind: ClassVar[str] = "gateway.token_superseded"
    gateway_id: uuid.UUID
    org_id: uuid.UUID


@dataclass(frozen=True)
class GatewayRegistered(Event):
    kind: ClassVar[str] = "gateway.registered"
    gateway_id: uuid.UUID
    org_id: uuid.UUID
    created: bool


@dataclass(frozen=True)
class GatewayChanged(Event):
    """Something people see about the gateway changed (name, labels)."""

    kind: ClassVar[str] = "gateway.changed"
    gateway_id: uuid.UUID
    org_id: uuid.UUID


@dataclass(frozen=True)
class RegistrationTokenRevoked(Event):
    kind: ClassVar[str] = "registration_token.revoked"
    token_id: uuid.UUID
    org_id: uuid.UUID


@dataclass(frozen=True)
class ConfigChanged(Event):
    """The desired configuration of these gateways changed; live agents get it now."""

    kind: ClassVar[str] = "config.changed"
    org_id: uuid.UUID
    gateway_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class DeploymentProgressed(Event):
    """A deployment changed state, sent a batch, or its gateways reported progress."""

    kind: ClassVar[str] = "deployment.progressed"
    deployment_id: uuid.UUID
    org_id: uuid.UUID


@dataclass(frozen=True)
class StatusChange:
    """One gateway's new status as written, and when it was last seen."""

    gateway_id: uuid.UUID
    org_id: uuid.UUID
    status: str
    last_seen: datetime | None


@dataclass(frozen=True)
class GatewayStatusChanged(Event):
    """Gateways whose status changed (registered -> active, active -> inactive, ...), all that
    one presence flush wrote: one event per flush, not one per gateway."""

    kind: ClassVar[str] = "gateway.status_changed"
    changes: tuple[StatusChange, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "changes": [
                {
                    "gateway_id": str(c.gateway_id),
                    "org_id": str(c.org_id),
                    "status": c.status,
                    "last_seen": c.last_seen.isoformat() if c.last_seen else None,
                }
                for c in self.changes
            ],
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Self:
        changes = []
        for c in body.get("changes") or ():
            seen = c.get("last_seen")
            changes.append(
                StatusChange(
                    gateway_id=uuid.UUID(str(c["gateway_id"])),
                    org_id=uuid.UUID(str(c["org_id"])),
                    status=str(c["status"]),
                    last_seen=datetime.fromisoformat(seen) if seen else None,
                )
            )
        return cls(changes=tuple(changes))


@dataclass(frozen=True)
class HealthChange:
    """One gateway's stored health changed (``from_health`` None: it was just created)."""

    gateway_id: uuid.UUID
    org_id: uuid.UUID
    from_health: str | None
    to_health: str
    reason: str | None
    at: datetime


@dataclass(frozen=True)
class GatewayHealthChanged(Event):
    """Health transitions one write committed (a presence flush, a health sweep, a
    deactivation, a registration): one event per write, not one per gateway."""

    kind: ClassVar[str] = "gateway.health_changed"
    changes: tuple[HealthChange, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "changes": [
                {
                    "gateway_id": str(c.gateway_id),
                    "org_id": str(c.org_id),
                    "from": c.from_health,
                    "to": c.to_health,
                    "reason": c.reason,
                    "at": c.at.isoformat(),
                }
                for c in self.changes
            ],
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Self:
        changes = []
        for c in body.get("changes") or ():
            changes.append(
                HealthChange(
                    gateway_id=uuid.UUID(str(c["gateway_id"])),
                    org_id=uuid.UUID(str(c["org_id"])),
                    from_health=None if c.get("from") is None else str(c["from"]),
                    to_health=str(c["to"]),
                    reason=None if c.get("reason") is None else str(c["reason"]),
                    at=datetime.fromisoformat(str(c["at"])),
                )
            )
        return cls(changes=tuple(changes))


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        GatewayRevoked,
        GatewayTokenSuperseded,
        GatewayRegistered,
        GatewayChanged,
        RegistrationTokenRevoked,
        ConfigChanged,
        DeploymentProgressed,
        GatewayStatusChanged,
        GatewayHealthChanged,
    )
}


def event_from_json(body: dict[str, Any]) -> Event:
    """Rebuild an event published by another replica; raises ``ValueError`` on a bad body."""
    cls = EVENT_TYPES.get(str(body.get("kind")))
    if cls is None:
        raise ValueError(f"unknown event kind {body.get('kind')!r}")
    try:
        return cls.from_json(body)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed {cls.kind} event") from exc

"""Who a caller is in terms of organisations: a user or API key and its role in each org.

Resolving a credential to a :class:`Principal` is the web layer's job (``flowgate.auth``); the
rules about what a principal may do live with the organisations they concern.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from flowgate.orgs.models import ApiKey, Role, User


@dataclass
class Principal:
    """A signed-in user or an API key, with the role it holds in each organisation."""

    roles: dict[uuid.UUID, Role] = field(default_factory=dict)
    user: User | None = None
    api_key: ApiKey | None = None
    #: Authenticated by the browser session cookie (not a bearer token).
    via_session: bool = False

    @property
    def is_superuser(self) -> bool:
        return bool(self.user and self.user.is_superuser)

    @property
    def actor_id(self) -> uuid.UUID | None:
        return self.user.id if self.user else None

    @property
    def label(self) -> str:
        if self.user:
            return f"user:{self.user.id}"
        return f"api_key:{self.api_key.id}" if self.api_key else "anonymous"


@dataclass(frozen=True)
class OrgAccess:
    """The organisation a management request acts on, and the caller's role there."""

    org_id: uuid.UUID
    role: Role
    principal: Principal

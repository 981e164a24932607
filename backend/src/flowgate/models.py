"""Every mapped table, imported in one place for Alembic and the CLI."""

from flowgate.configs.models import GatewayRemoteConfig
from flowgate.core.db import Base
from flowgate.core.quarantine import QuarantinedValue
from flowgate.gateways.models import Gateway, GatewayStatus
from flowgate.orgs.models import ApiKey, Membership, Organization, Role, User
from flowgate.tokens.models import RegistrationToken

__all__ = [
    "ApiKey",
    "Base",
    "Gateway",
    "GatewayRemoteConfig",
    "GatewayStatus",
    "Membership",
    "Organization",
    "QuarantinedValue",
    "RegistrationToken",
    "Role",
    "User",
]

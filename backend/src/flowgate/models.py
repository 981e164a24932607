"""Every mapped table, imported in one place for Alembic and the CLI."""

from flowgate.configs.models import (
    Assignment,
    ConfigTemplate,
    ConfigVersion,
    Deployment,
    DeploymentTarget,
)
from flowgate.core.db import Base
from flowgate.core.quarantine import QuarantinedValue
from flowgate.gateways.models import (
    Gateway,
    GatewayCount,
    GatewayCountDelta,
    GatewayHealthTransition,
    GatewayName,
    GatewayStatus,
    ScheduledJob,
)
from flowgate.orgs.models import ApiKey, Membership, Organization, Role, User
from flowgate.tokens.models import RegistrationToken

__all__ = [
    "ApiKey",
    "Assignment",
    "Base",
    "ConfigTemplate",
    "ConfigVersion",
    "Deployment",
    "DeploymentTarget",
    "Gateway",
    "GatewayCount",
    "GatewayCountDelta",
    "GatewayHealthTransition",
    "GatewayName",
    "GatewayStatus",
    "Membership",
    "Organization",
    "QuarantinedValue",
    "RegistrationToken",
    "Role",
    "ScheduledJob",
    "User",
]

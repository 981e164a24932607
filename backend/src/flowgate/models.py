"""Every mapped table, imported in one place for Alembic and the CLI."""

from flowgate.alerts.models import (
    Alert,
    AlertLease,
    AlertRule,
    Notification,
    NotificationChannel,
    Silence,
)
from flowgate.audit.models import AuditEntry, AuditLease
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
    "Alert",
    "AlertLease",
    "AlertRule",
    "ApiKey",
    "Assignment",
    "AuditEntry",
    "AuditLease",
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
    "Notification",
    "NotificationChannel",
    "Organization",
    "QuarantinedValue",
    "RegistrationToken",
    "Role",
    "ScheduledJob",
    "Silence",
    "User",
]

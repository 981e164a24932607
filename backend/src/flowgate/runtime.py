"""The process's collaborators, built once and wired together (the only place that knows them
all). Routers reach the parts they need through small dependencies (``app.state``); nothing
below this module imports it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from flowgate.alerts.runner import Alerting
from flowgate.audit.log import Sink
from flowgate.audit.retention import AuditPruner
from flowgate.configs.reports import RolloutReports
from flowgate.core.db import Database
from flowgate.core.events import (
    ConfigChanged,
    DeploymentProgressed,
    GatewayChanged,
    GatewayHealthChanged,
    GatewayRegistered,
    GatewayRevoked,
    GatewayStatusChanged,
    GatewayTokenSuperseded,
    RegistrationTokenRevoked,
)
from flowgate.core.settings import Settings
from flowgate.core.uow import UnitOfWork, unit_of_work_factory
from flowgate.deployments.rollout import RolloutDriver
from flowgate.events.hub import EventHub
from flowgate.fleet.bus import Bus
from flowgate.fleet_metrics import FleetGauges
from flowgate.gateways.identity import IdentityCache
from flowgate.gateways.presence import Presence
from flowgate.gateways.queries import SummaryCache
from flowgate.gateways.sweep import HealthSweep
from flowgate.opamp.agents import OpAMPAgents
from flowgate.opamp.auth import Admission, Authenticator
from flowgate.opamp.store import AgentStore

#: How long rollout reports (agents applying a config) gather before they are written.
REPORT_FLUSH_SECONDS = 0.2


@dataclass
class Runtime:
    settings: Settings
    db: Database
    bus: Bus
    unit_of_work: Callable[[], UnitOfWork]
    presence: Presence
    identities: IdentityCache
    summaries: SummaryCache
    authenticator: Authenticator
    agents: OpAMPAgents
    reports: RolloutReports
    rollouts: RolloutDriver
    events: EventHub
    audit: Sink
    audit_pruner: AuditPruner
    fleet_gauges: FleetGauges
    alerts: Alerting
    health_sweep: HealthSweep

    async def start(self) -> None:
        # Agents loading after a restart read through opamp_db_concurrency connections, and
        # the flushers take one or two more: have them open before the storm arrives.
        await self.db.warm(self.settings.opamp_db_concurrency + 2)
        await self.bus.start()
        self.presence.start()
        self.reports.start()
        self.rollouts.start()
        self.alerts.start()
        self.health_sweep.start()
        await self.agents.start()
        self.events.close_on_exit_signals()
        self.audit_pruner.start()
        self.fleet_gauges.start()

    async def stop(self) -> None:
        await self.fleet_gauges.stop()
        await self.audit_pruner.stop()
        await self.events.stop()
        await self.agents.stop()
        await self.alerts.stop()
        await self.health_sweep.stop()
        await self.rollouts.stop()
        await self.reports.stop()
        await self.presence.stop()
        await self.bus.stop()
        await self.db.dispose()

    def expose(self, state: Any) -> None:
        """Put the parts routers depend on into ``app.state``."""
        state.settings = self.settings
        state.db = self.db
        state.unit_of_work = self.unit_of_work
        state.presence = self.presence
        state.identities = self.identities
        state.summary_cache = self.summaries
        state.reports = self.reports
        state.events = self.events
        state.audit = self.audit
        state.alerts = self.alerts
        state.runtime = self


def _run(fn: Callable[[uuid.UUID], None]) -> Callable[[Any], Awaitable[None]]:
    async def handler(event: Any) -> None:
        fn(event.gateway_id)

    return handler


def build_runtime(settings: Settings) -> Runtime:
    db = Database(settings.resolved_database_url)
    bus = Bus(settings.redis_url)
    unit_of_work = unit_of_work_factory(db.sessionmaker, bus.publish)
    presence = Presence(
        unit_of_work,
        settings.flush_interval_seconds,
        settings.health_healthy_seconds,
        settings.health_warning_seconds,
    )
    health_sweep = HealthSweep(
        unit_of_work,
        settings.health_sweep_seconds,
        settings.health_healthy_seconds,
        settings.health_warning_seconds,
        settings.health_history_days,
    )
    identities = IdentityCache(settings.signing_key)
    summaries = SummaryCache(settings.summary_cache_seconds)
    admission = Admission(settings.opamp_db_concurrency, settings.opamp_max_queued)
    authenticator = Authenticator(settings, identities, unit_of_work, admission)
    rollouts = RolloutDriver(unit_of_work, settings.rollout_tick_seconds)
    reports = RolloutReports(unit_of_work, REPORT_FLUSH_SECONDS, on_written=rollouts.wake)
    store = AgentStore(settings, unit_of_work, presence, admission)
    agents = OpAMPAgents(settings, store, admission, reports)
    events = EventHub(settings, unit_of_work)
    # The request's app state, not this factory: tests swap ``app.state.unit_of_work``.
    audit = Sink(lambda connection: connection.app.state.unit_of_work())
    pruner = AuditPruner(
        unit_of_work, settings.audit_retention_days, settings.audit_prune_interval_seconds
    )
    fleet_gauges = FleetGauges(unit_of_work, settings.metrics_fleet_seconds)

    async def org_changed(event: GatewayRevoked | GatewayRegistered) -> None:
        summaries.invalidate(event.org_id)

    async def token_revoked(_: RegistrationTokenRevoked) -> None:
        authenticator.forget_registration_tokens()

    # Order matters for a revocation: stop trusting the credential, drop what was buffered
    # under it, then close the live socket.
    bus.subscribe(GatewayRevoked, _run(identities.invalidate))
    bus.subscribe(GatewayRevoked, _run(presence.forget))
    bus.subscribe(GatewayRevoked, org_changed)
    bus.subscribe(GatewayRevoked, agents.on_revoked)
    # Presence needs nothing here: its flush writes only under the current credential.
    bus.subscribe(GatewayTokenSuperseded, _run(identities.invalidate))
    bus.subscribe(GatewayTokenSuperseded, agents.on_token_superseded)
    bus.subscribe(GatewayRegistered, org_changed)
    bus.subscribe(RegistrationTokenRevoked, token_revoked)
    bus.subscribe(ConfigChanged, agents.on_config_changed)
    # Live views last: whatever an event invalidates is dropped before a browser refetches it.
    bus.subscribe(GatewayRegistered, events.on_registered)
    bus.subscribe(GatewayStatusChanged, events.on_status_changed)
    bus.subscribe(GatewayHealthChanged, events.on_health_changed)
    bus.subscribe(GatewayRevoked, events.on_revoked)
    bus.subscribe(GatewayChanged, events.on_changed)
    bus.subscribe(ConfigChanged, events.on_config_changed)
    bus.subscribe(DeploymentProgressed, events.on_deployment_progressed)
    return Runtime(
        settings=settings,
        db=db,
        bus=bus,
        unit_of_work=unit_of_work,
        presence=presence,
        identities=identities,
        summaries=summaries,
        authenticator=authenticator,
        agents=agents,
        reports=reports,
        rollouts=rollouts,
        events=events,
        audit=audit,
        audit_pruner=pruner,
        fleet_gauges=fleet_gauges,
        alerts=Alerting(unit_of_work, settings),
        health_sweep=health_sweep,
    )

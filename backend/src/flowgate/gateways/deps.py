"""FastAPI dependencies for the gateway routers: this replica's gateway collaborators."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from flowgate.configs.reports import RolloutReports
from flowgate.gateways.identity import IdentityCache
from flowgate.gateways.presence import Presence
from flowgate.gateways.queries import SummaryCache


async def get_presence(request: Request) -> Presence:
    presence: Presence = request.app.state.presence
    return presence


async def get_identities(request: Request) -> IdentityCache:
    identities: IdentityCache = request.app.state.identities
    return identities


async def get_summary_cache(request: Request) -> SummaryCache:
    cache: SummaryCache = request.app.state.summary_cache
    return cache


async def get_reports(request: Request) -> RolloutReports:
    reports: RolloutReports = request.app.state.reports
    return reports


PresenceDep = Annotated[Presence, Depends(get_presence)]
ReportsDep = Annotated[RolloutReports, Depends(get_reports)]
IdentitiesDep = Annotated[IdentityCache, Depends(get_identities)]
SummaryCacheDep = Annotated[SummaryCache, Depends(get_summary_cache)]

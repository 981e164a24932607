"""Which configuration templates gateways are assigned to (owned by the deployments service)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession


async def template_in_use(session: AsyncSession, template_id: uuid.UUID) -> bool:
    """True while an active assignment (a deployed version of the template) uses it, so the
    template must not be deleted.

    The deployments service owns assignments and this answer; until it exists no assignment
    can refer to a template, so none is in use.
    """
    return False

"""Versions of a configuration template: add (checked, numbered atomically), list, read, diff.

A version never changes once stored: there is no function here (and no route) that updates
or deletes one; they go only with their template or organisation. Functions are scoped to one
organisation, flush through the caller's session and never commit.
"""

from __future__ import annotations

import difflib
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from flowgate.configs import templates
from flowgate.configs.base import config_hash
from flowgate.configs.models import ConfigTemplate, ConfigVersion
from flowgate.configs.validation import validate
from flowgate.core.db import utcnow
from flowgate.core.errors import ConfigRejected, Conflict, NotFound

log = logging.getLogger(__name__)

#: Lines of context around each change in a diff (as ``diff -u`` and ``git diff``).
DIFF_CONTEXT = 3
INVALID_CONFIG = "The configuration is not valid"
_WHERE = re.compile(r"at line (\d+), column (\d+)")


@dataclass(frozen=True)
class ConfigProblem:
    """One reason a body was refused; ``line`` and ``column`` are 1-based, None when the
    problem is not at one place (a missing section, say)."""

    message: str
    line: int | None = None
    column: int | None = None


def config_problems(config_yaml: str, content_type: str) -> list[ConfigProblem]:
    """Why the body cannot be stored as a version (empty when it can): a collector config
    for ``text/yaml``, a JSON object for ``application/json``."""
    if content_type == "application/json":
        try:
            doc = orjson.loads(config_yaml)
        except orjson.JSONDecodeError as exc:
            problem = f"config_yaml is not valid JSON: {exc.msg}"
            return [ConfigProblem(problem, exc.lineno, exc.colno)]
        if not isinstance(doc, dict):
            return [ConfigProblem("an application/json config must be a JSON object", 1, 1)]
        return []
    result = validate(config_yaml)
    return [ConfigProblem(e.message, e.line, e.column) for e in result.errors]


def invalid_config_error(problems: Sequence[ConfigProblem]) -> ConfigRejected:
    """The 422 for a refused body: ``{"detail": {"message", "errors": [{"line", "column",
    "message"}]}}``, the message naming the first problem."""
    errors = [{"line": p.line, "column": p.column, "message": p.message} for p in problems]
    first = problems[0]
    where = f" (at line {first.line}, column {first.column})" if first.line is not None else ""
    more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
    return ConfigRejected(errors, f"{INVALID_CONFIG}: {first.message}{where}{more}")


async def add_version(
    session: AsyncSession,
    org_id: uuid.UUID,
    template_id: uuid.UUID,
    config_yaml: str,
    content_type: str = "text/yaml",
    message: str | None = None,
    created_by: uuid.UUID | None = None,
) -> ConfigVersion:
    """Store the next version of the template (1, 2, ...).

    Refuses (422, nothing stored) a body that :func:`config_problems` finds fault with, and
    (409) one identical to the latest version: a new version always means a change. Going
    back to an older body is a change and gets a new number.

    Concurrent calls get distinct, consecutive numbers: the number comes from one ``UPDATE``
    of the template row (``latest_version + 1``), which takes the row lock on PostgreSQL and
    the write lock on SQLite, so the next caller waits for this transaction and counts on
    from its result. A rolled-back call gives its number back.
    """
    problems = config_problems(config_yaml, content_type)
    if problems:
        raise invalid_config_error(problems)
    number = await session.scalar(
        update(ConfigTemplate)
        .where(ConfigTemplate.id == template_id, ConfigTemplate.org_id == org_id)
        .values(
            latest_version=func.coalesce(ConfigTemplate.latest_version, 0) + 1,
            updated_at=utcnow(),
        )
        .returning(ConfigTemplate.latest_version)
        .execution_options(synchronize_session=False)
    )
    if number is None:
        raise templates.ConfigNotFound()
    digest = config_hash(config_yaml, content_type)
    if number > 1:
        previous = await session.scalar(
            select(ConfigVersion.config_hash).where(
                ConfigVersion.template_id == template_id, ConfigVersion.version == number - 1
            )
        )
        if previous == digest:
            raise Conflict(f"Identical to version {number - 1}; nothing stored")
    record = ConfigVersion(
        template_id=template_id,
        org_id=org_id,
        version=number,
        config_yaml=config_yaml,
        content_type=content_type,
        config_hash=digest,
        message=message,
        created_by=created_by,
    )
    session.add(record)
    try:
        await session.flush()
    except IntegrityError:  # only if the counter and the rows disagree; never a 500
        raise Conflict("Another version was added at the same time; retry") from None
    log.info(
        "config version created",
        extra={"config_id": str(template_id), "config_version": number, "config_hash": digest},
    )
    return record


async def list_versions(
    session: AsyncSession,
    org_id: uuid.UUID,
    template_id: uuid.UUID,
    limit: int,
    before: int | None = None,
) -> tuple[list[ConfigVersion], int | None]:
    """Up to ``limit`` versions below ``before`` (all when None), newest first, without
    their bodies loaded; and the ``before`` of the next page (None on the last)."""
    await templates.get(session, org_id, template_id)
    query = (
        select(ConfigVersion)
        .options(defer(ConfigVersion.config_yaml))
        .where(ConfigVersion.template_id == template_id, ConfigVersion.org_id == org_id)
        .order_by(ConfigVersion.version.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(ConfigVersion.version < before)
    rows = list(await session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].version if more and rows else None)


async def get_version(
    session: AsyncSession, org_id: uuid.UUID, template_id: uuid.UUID, number: int
) -> ConfigVersion:
    found = await _versions(session, org_id, template_id, {number})
    return found[number]


async def diff(
    session: AsyncSession, org_id: uuid.UUID, template_id: uuid.UUID, old: int, new: int
) -> str:
    """The unified diff from version ``old`` to version ``new`` (see :func:`unified_diff`)."""
    found = await _versions(session, org_id, template_id, {old, new})
    return unified_diff(found[old].config_yaml, found[new].config_yaml, f"v{old}", f"v{new}")


def unified_diff(old: str, new: str, old_label: str, new_label: str) -> str:
    """``diff -u`` of two texts: headers ``--- old_label`` / ``+++ new_label``, hunks with
    :data:`DIFF_CONTEXT` lines of context, lines split at ``\\n`` only, and a last line
    without a newline marked ``\\ No newline at end of file``. Empty when the texts are equal."""
    out: list[str] = []
    for line in difflib.unified_diff(
        _lines(old), _lines(new), old_label, new_label, n=DIFF_CONTEXT
    ):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def _lines(text: str) -> list[str]:
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


async def _versions(
    session: AsyncSession, org_id: uuid.UUID, template_id: uuid.UUID, numbers: set[int]
) -> dict[int, ConfigVersion]:
    """The versions ``numbers`` of the template: 404 naming the template or the first
    missing version."""
    await templates.get(session, org_id, template_id)
    rows = await session.scalars(
        select(ConfigVersion).where(
            ConfigVersion.template_id == template_id,
            ConfigVersion.org_id == org_id,
            ConfigVersion.version.in_(numbers),
        )
    )
    found = {row.version: row for row in rows}
    missing = sorted(numbers - found.keys())
    if missing:
        raise NotFound(f"Version {missing[0]} of this configuration not found")
    return found

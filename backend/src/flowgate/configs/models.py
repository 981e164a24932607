"""Stored configurations: per-gateway pushes, and templates with numbered versions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from flowgate.core.db import Base, utcnow


class GatewayRemoteConfig(Base):
    """One immutable, numbered configuration pushed to a gateway; the newest is the desired one."""

    __tablename__ = "gateway_remote_configs"
    __table_args__ = (UniqueConstraint("gateway_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    gateway_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("gateways.id", ondelete="CASCADE"), index=True
    )
    org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(BigInteger)
    config_yaml: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(64), default="text/yaml")
    config_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConfigTemplate(Base):
    """A named collector configuration of an organisation; its content lives in versions.

    ``latest_version`` is the number of the newest version (None before the first). It is also
    the version counter: a new version takes ``latest_version + 1`` in one ``UPDATE`` of this
    row, which serialises concurrent additions on both databases.
    """

    __tablename__ = "config_templates"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    latest_version: Mapped[int | None]
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConfigVersion(Base):
    """One immutable, numbered body of a template (1, 2, ... per template). Never updated;
    removed only with its template or organisation."""

    __tablename__ = "config_versions"
    __table_args__ = (UniqueConstraint("template_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    template_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("config_templates.id", ondelete="CASCADE")
    )
    org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int]
    config_yaml: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(64))
    #: :func:`flowgate.configs.base.config_hash` of the body: what OpAMP agents receive.
    config_hash: Mapped[str] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

"""Tables owned by campaigns: campaigns and their sequences."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import TenantScoped, TimestampedMixin

CAMPAIGN_STATUSES = ("draft", "pilot", "active", "paused", "stopped", "completed")


class Campaign(TimestampedMixin, TenantScoped):
    __tablename__ = "campaigns"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        Index("ix_campaigns_tenant_id_status", "tenant_id", "status"),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in CAMPAIGN_STATUSES) + ")", name="status"
        ),
    )

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    target_persona: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    offer: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="draft")
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    # When the canary batch passed its observation window; until then only it may be sent to.
    canary_passed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class Sequence(TimestampedMixin, TenantScoped):
    __tablename__ = "sequences"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "campaign_id", "version"),
        ForeignKeyConstraint(
            ["tenant_id", "campaign_id"],
            ["campaigns.tenant_id", "campaigns.id"],
            ondelete="CASCADE",
        ),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    variables: Mapped[list[str]] = mapped_column(ARRAY(String(40)), nullable=False, default=list)

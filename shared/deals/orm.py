"""deals_shadow: every deal ASEP created or updated, and every reply it did not turn into
one (pending approval, held, blocked, with the reason). It is written whether or not a CRM
is connected, so the tenant's deal history never depends on the CRM."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    Index,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import TenantScoped, TimestampedMixin

# Listed with the usual value first (the catalog row builder picks the first value).
STAGES = ("POSITIVE_REPLY", "MEETING_BOOKED", "QUALIFIED", "DISQUALIFIED")
STATUSES = ("created", "pending_approval", "held", "blocked")
SOURCES = ("reply", "meeting")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class DealShadow(TimestampedMixin, TenantScoped):
    __tablename__ = "deals_shadow"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        # One record per source reply: gating a reply again finds what it did the first time.
        UniqueConstraint("tenant_id", "source_reply_id"),
        Index("ix_deals_shadow_tenant_id_created_at", "tenant_id", "created_at"),
        Index("ix_deals_shadow_tenant_id_prospect_id", "tenant_id", "prospect_id", "created_at"),
        Index(
            "ix_deals_shadow_tenant_id_company_domain", "tenant_id", "company_domain", "created_at"
        ),
        CheckConstraint(_in("stage", STAGES), name="stage"),
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint(_in("source", SOURCES), name="source"),
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence"),
        CheckConstraint(
            "status NOT IN ('held', 'blocked') OR reason IS NOT NULL", name="not_created_has_reason"
        ),
    )

    prospect_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    company_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    company_domain: Mapped[str | None] = mapped_column(String(253))
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    stage: Mapped[str] = mapped_column(String(24), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    crm_provider: Mapped[str | None] = mapped_column(String(32))
    crm_external_id: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float, nullable=False)
    source_reply_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    last_reply_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    approval_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    decision_id: Mapped[str | None] = mapped_column(String(64))
    correlation_id: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )

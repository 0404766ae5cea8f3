"""Campaign membership: which prospects a campaign reaches, and where each one's journey is."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import TenantScoped, TimestampedMixin

MEMBER_STATUSES = (
    "pending",  # added, not yet enrolled in an orchestration
    "running",
    "awaiting_approval",
    "held",  # stopped by policy, a refusal or a failure, with a reason
    "replied",
    "stopped",  # by a person, the kill switch or the campaign stopping
    "completed",
)


class CampaignMember(TimestampedMixin, TenantScoped):
    __tablename__ = "campaign_members"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "campaign_id", "prospect_id"),
        ForeignKeyConstraint(
            ["tenant_id", "campaign_id"],
            ["campaigns.tenant_id", "campaigns.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "prospect_id"],
            ["prospects.tenant_id", "prospects.id"],
            ondelete="CASCADE",
        ),
        Index(
            "ix_campaign_members_tenant_id_campaign_id_status", "tenant_id", "campaign_id", "status"
        ),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in MEMBER_STATUSES) + ")", name="status"
        ),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    prospect_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False, default="pending")
    reason: Mapped[str | None] = mapped_column(String(500))
    canary: Mapped[bool] = mapped_column(nullable=False, default=False)
    touches_sent: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_step_id: Mapped[str | None] = mapped_column(String(40))
    instance_id: Mapped[str | None] = mapped_column(String(120))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )

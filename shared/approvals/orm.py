"""Tables owned by approvals: approval requests and approved sequence-step templates."""

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
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import TenantScoped, TimestampedMixin

APPROVAL_STATUSES = ("pending", "approved", "rejected", "expired")
APPROVAL_MODES = ("once", "every_time")


class Approval(TimestampedMixin, TenantScoped):
    """A request for a human decision on one action, with what the approver needs to decide.

    Campaign and prospect ids are not foreign keys on purpose: an approval is a record of a
    decision and outlives the objects it was about (a prospect erased under GDPR, say).
    """

    __tablename__ = "approvals"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        # Activities run at least once: a repeated request for the same action finds this row.
        UniqueConstraint("tenant_id", "action_kind", "action_id"),
        Index("ix_approvals_tenant_id_status_expires_at", "tenant_id", "status", "expires_at"),
        Index("ix_approvals_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in APPROVAL_STATUSES) + ")", name="status"
        ),
        CheckConstraint(
            "mode IN (" + ", ".join(f"'{m}'" for m in APPROVAL_MODES) + ")", name="mode"
        ),
    )

    action_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    action_id: Mapped[str] = mapped_column(String(200), nullable=False)
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    sequence_step: Mapped[int | None] = mapped_column(Integer)
    template_hash: Mapped[str | None] = mapped_column(String(128))
    prospect_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    orchestration_instance_id: Mapped[str | None] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(16), nullable=False, default="every_time")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    requested_by: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    decided_by: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    reason: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text, nullable=False, default="")
    preview: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    decision_trace: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApprovedStepTemplate(TimestampedMixin, TenantScoped):
    """ "Approve once": a campaign step's template, approved for every later draft of it."""

    __tablename__ = "approved_step_templates"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id",
            "campaign_id",
            "sequence_step",
            "template_hash",
            name="uq_approved_step_templates_step",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "campaign_id"],
            ["campaigns.tenant_id", "campaigns.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "approval_id"],
            ["approvals.tenant_id", "approvals.id"],
            ondelete="RESTRICT",
        ),
        Index("ix_approved_step_templates_tenant_id_approval_id", "tenant_id", "approval_id"),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    sequence_step: Mapped[int] = mapped_column(Integer, nullable=False)
    template_hash: Mapped[str] = mapped_column(String(128), nullable=False)
    approval_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    approved_by: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

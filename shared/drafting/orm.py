"""Drafts: one per prospect per sequence step, with the evidence each line rests on."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, Integer, String, Text
from sqlalchemy import UniqueConstraint as Unique
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import TenantScoped, TimestampedMixin

DRAFT_STATUSES = ("draft", "pending_approval", "approved", "rejected", "blocked", "sent")


class Draft(TimestampedMixin, TenantScoped):
    __tablename__ = "drafts"
    __table_args__ = (
        Unique("tenant_id", "id"),
        Unique("tenant_id", "campaign_id", "prospect_id", "step_id"),
        ForeignKeyConstraint(
            ["tenant_id", "prospect_id"],
            ["prospects.tenant_id", "prospects.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "campaign_id"],
            ["campaigns.tenant_id", "campaigns.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "sequence_id"],
            ["sequences.tenant_id", "sequences.id"],
            ondelete="CASCADE",
        ),
        Index("ix_drafts_tenant_id_prospect_id", "tenant_id", "prospect_id"),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in DRAFT_STATUSES) + ")", name="status"
        ),
    )

    prospect_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    campaign_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    sequence_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    sequence_version: Mapped[int] = mapped_column(Integer, nullable=False)
    step_id: Mapped[str] = mapped_column(String(40), nullable=False)
    subject: Mapped[str] = mapped_column(String(300), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    cta: Mapped[str | None] = mapped_column(String(500))
    bullets: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    claims: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    evidence_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(PG_UUID(as_uuid=True)), nullable=False, default=list
    )
    content_risk: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    evidence_summary: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    model_provider: Mapped[str] = mapped_column(String(40), nullable=False)
    model_name: Mapped[str] = mapped_column(String(80), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="draft")

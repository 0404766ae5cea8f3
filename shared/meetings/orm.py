"""The meetings table: one row per booking flow, from the proposal to the booked event."""

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
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import TenantScoped, TimestampedMixin

MEETING_STATUSES = (
    "proposing",  # opened; no proposal delivered yet
    "proposed",  # slots sent; waiting for the prospect's choice
    "booking",  # a slot was checked free and is being put in the calendar
    "booked",
    "declined",
    "expired",
    "cancelled",
    "held",  # policy, the calendar or the mailbox stopped it; status_reason says why
)
CHOICE_SOURCES = ("link", "reply")


def _values(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Meeting(TimestampedMixin, TenantScoped):
    __tablename__ = "meetings"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "inbound_id"),
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
            ["tenant_id", "mailbox_id"], ["mailboxes.tenant_id", "mailboxes.id"], ondelete="CASCADE"
        ),
        ForeignKeyConstraint(
            ["tenant_id", "inbound_id"],
            ["inbound_messages.tenant_id", "inbound_messages.id"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["tenant_id", "deal_id"], ["deals_shadow.tenant_id", "deals_shadow.id"]
        ),
        Index("ix_meetings_tenant_id_created_at", "tenant_id", "created_at"),
        Index("ix_meetings_tenant_id_prospect_id", "tenant_id", "prospect_id", "created_at"),
        CheckConstraint(f"status IN ({_values(MEETING_STATUSES)})", name="status"),
        CheckConstraint(
            f"choice_source IS NULL OR choice_source IN ({_values(CHOICE_SOURCES)})",
            name="choice_source",
        ),
        CheckConstraint("proposal_round >= 0", name="proposal_round"),
        CheckConstraint("duration_minutes > 0", name="duration"),
        CheckConstraint("status <> 'booked' OR calendar_event_uid IS NOT NULL", name="booked_uid"),
    )

    prospect_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    # The reply that asked for the meeting: one booking flow per reply.
    inbound_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    mailbox_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    deal_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="proposing")
    status_reason: Mapped[str | None] = mapped_column(Text)
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False)  # the prospect's
    rep_time_zone: Mapped[str] = mapped_column(String(64), nullable=False)
    duration_minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    # [{"start": UTC ISO, "end": UTC ISO, "local_start": ISO in time_zone, "label": "..."}]
    proposed_slots: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, default=list
    )
    proposal_round: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    proposal_intent_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    chosen_index: Mapped[int | None] = mapped_column(Integer)
    chosen_slot: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    choice_source: Mapped[str | None] = mapped_column(String(8))
    choice_inbound_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    calendar_event_uid: Mapped[str | None] = mapped_column(String(255))
    correlation_id: Mapped[str | None] = mapped_column(String(200))
    orchestration_instance_id: Mapped[str] = mapped_column(String(200), nullable=False)
    proposed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    booked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )

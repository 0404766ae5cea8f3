"""Tables owned by replies: one classification per inbound message, the intent events raised
on positive replies, and the labels people gave (training data)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import TenantScoped, TimestampedMixin

LABELS = ("positive", "neutral", "objection", "unsubscribe", "ooo", "bounce", "complaint")
# Listed with the usual state first (the catalog row builder picks the first value).
STATUSES = ("classified", "unclassifiable")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class Reply(TimestampedMixin, TenantScoped):
    """The classification of one inbound message (exactly one row per message)."""

    __tablename__ = "replies"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "inbound_id"),
        ForeignKeyConstraint(
            ["tenant_id", "inbound_id"],
            ["inbound_messages.tenant_id", "inbound_messages.id"],
            ondelete="CASCADE",
        ),
        Index("ix_replies_tenant_id_created_at", "tenant_id", "created_at"),
        Index("ix_replies_tenant_id_prospect_id", "tenant_id", "prospect_id"),
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint(_in("label", LABELS), name="label"),
        CheckConstraint("human_label IS NULL OR " + _in("human_label", LABELS), name="human_label"),
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence"),
        CheckConstraint(
            "status <> 'unclassifiable' OR reason IS NOT NULL", name="unclassifiable_has_reason"
        ),
    )

    inbound_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    mailbox_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    intent_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    prospect_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    label: Mapped[str] = mapped_column(String(16), nullable=False)
    sub_label: Mapped[str | None] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float, nullable=False)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    reason: Mapped[str | None] = mapped_column(Text)
    recommendation: Mapped[str] = mapped_column(Text, nullable=False)
    classifier_version: Mapped[str] = mapped_column(String(100), nullable=False)
    # Identifies the text that was classified without keeping a second copy of it.
    reduced_text_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    correlation_id: Mapped[str | None] = mapped_column(String(200))
    human_label: Mapped[str | None] = mapped_column(String(16))
    human_sub_label: Mapped[str | None] = mapped_column(String(64))
    labelled_by: Mapped[str | None] = mapped_column(String(256))
    labelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IntentEvent(TimestampedMixin, TenantScoped):
    """A buying signal: raised once per positive reply, read by deal gating."""

    __tablename__ = "intent_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "reply_id"),
        ForeignKeyConstraint(
            ["tenant_id", "reply_id"], ["replies.tenant_id", "replies.id"], ondelete="CASCADE"
        ),
        Index("ix_intent_events_tenant_id_created_at", "tenant_id", "created_at"),
        CheckConstraint("confidence >= 0 AND confidence <= 1", name="confidence"),
    )

    reply_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    intent_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    prospect_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    confidence: Mapped[float] = mapped_column(Float, nullable=False)
    sub_label: Mapped[str | None] = mapped_column(String(64))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    correlation_id: Mapped[str | None] = mapped_column(String(200))


class ReplyLabelRecord(TimestampedMixin, TenantScoped):
    """A person's label for a reply, with the text it applies to: the training data for the
    next model. Personal data, so a tenant table that erasure can reach (not the audit chain)."""

    __tablename__ = "reply_labels"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        ForeignKeyConstraint(
            ["tenant_id", "reply_id"], ["replies.tenant_id", "replies.id"], ondelete="CASCADE"
        ),
        Index("ix_reply_labels_tenant_id_reply_id", "tenant_id", "reply_id"),
        CheckConstraint(_in("label", LABELS), name="label"),
        CheckConstraint(_in("previous_label", LABELS), name="previous_label"),
    )

    reply_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    label: Mapped[str] = mapped_column(String(16), nullable=False)
    sub_label: Mapped[str | None] = mapped_column(String(64))
    previous_label: Mapped[str] = mapped_column(String(16), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    reduced_text: Mapped[str] = mapped_column(Text, nullable=False)
    labelled_by: Mapped[str] = mapped_column(String(256), nullable=False)

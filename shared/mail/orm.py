"""Tables owned by mail: send intents, inbound messages, and the sandbox provider's store."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import TenantScoped, TimestampedMixin

# Listed with the initial state first (the catalog row builder picks the first value).
SEND_STATUSES = ("pending", "draft", "sending", "unknown", "sent", "held")
SIGNAL_STATES = ("none", "pending", "raised")
SANDBOX_DIRECTIONS = ("sent", "inbound")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def _mailbox_fk(ondelete: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "mailbox_id"], ["mailboxes.tenant_id", "mailboxes.id"], ondelete=ondelete
    )


class SendIntent(TimestampedMixin, TenantScoped):
    """One message we mean to send, recorded (with its bytes) before any provider call."""

    __tablename__ = "send_intents"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "idempotency_key"),
        UniqueConstraint("tenant_id", "message_id"),
        _mailbox_fk("RESTRICT"),
        Index("ix_send_intents_tenant_id_status", "tenant_id", "status"),
        Index("ix_send_intents_tenant_id_campaign_id", "tenant_id", "campaign_id"),
        CheckConstraint(_in("status", SEND_STATUSES), name="status"),
        CheckConstraint("status <> 'held' OR status_reason IS NOT NULL", name="held_has_reason"),
        CheckConstraint("attempts >= 0 AND reconcile_attempts >= 0", name="attempts"),
        CheckConstraint("recipient = lower(recipient)", name="recipient_lowercase"),
    )

    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False)
    mailbox_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    prospect_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    step_id: Mapped[str | None] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(320), nullable=False)
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    message_id: Mapped[str] = mapped_column(String(255), nullable=False)
    in_reply_to: Mapped[str | None] = mapped_column(String(255))
    references: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    raw_message: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    status_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    reconcile_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempt_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unclear_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    provider_thread_id: Mapped[str | None] = mapped_column(String(255))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    correlation_id: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class InboundMail(TimestampedMixin, TenantScoped):
    """A message that arrived in one of our mailboxes, stored once, threaded when possible."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "mailbox_id", "dedupe_key"),
        _mailbox_fk("RESTRICT"),
        ForeignKeyConstraint(
            ["tenant_id", "intent_id"], ["send_intents.tenant_id", "send_intents.id"]
        ),
        Index("ix_inbound_messages_tenant_id_signal_state", "tenant_id", "signal_state"),
        Index("ix_inbound_messages_tenant_id_intent_id", "tenant_id", "intent_id"),
        CheckConstraint(_in("signal_state", SIGNAL_STATES), name="signal_state"),
        CheckConstraint("size_bytes >= 0", name="size_bytes"),
    )

    mailbox_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    # The Message-ID, or "sha256:<hex>" of the bytes when there is none.
    dedupe_key: Mapped[str] = mapped_column(Text, nullable=False)
    message_id: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(255))
    sender: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    in_reply_to: Mapped[str | None] = mapped_column(Text)
    references: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    content_type: Mapped[str] = mapped_column(String(127), nullable=False, default="text/plain")
    intent_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    prospect_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    problems: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    # Why the message is stored without being fully read or threaded.
    reason: Mapped[str | None] = mapped_column(Text)
    signal_state: Mapped[str] = mapped_column(String(16), nullable=False, default="none")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class SandboxMessage(TimestampedMixin, TenantScoped):
    """The sandbox provider's store: every message it accepted or received, duplicates included
    (a real provider does not deduplicate either, and tests count them)."""

    __tablename__ = "sandbox_messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        _mailbox_fk("CASCADE"),
        Index("ix_sandbox_messages_mailbox_seq", "tenant_id", "mailbox_id", "direction", "seq"),
        Index("ix_sandbox_messages_tenant_id_message_id", "tenant_id", "message_id"),
        CheckConstraint(_in("direction", SANDBOX_DIRECTIONS), name="direction"),
    )
    # seq and created_at come from the server; the caller reads them right after the insert.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012

    seq: Mapped[int] = mapped_column(BigInteger, Identity(), nullable=False)
    mailbox_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    direction: Mapped[str] = mapped_column(String(8), nullable=False)
    message_id: Mapped[str | None] = mapped_column(Text)
    sender: Mapped[str | None] = mapped_column(String(320))
    recipients: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    subject: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class SandboxFaultPlan(TimestampedMixin, TenantScoped):
    """Fault injection for one sandbox mailbox; `plan` is a `FaultPlan` (shared/mail/schemas.py)."""

    __tablename__ = "sandbox_fault_plans"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "mailbox_id"),
        _mailbox_fk("CASCADE"),
    )

    mailbox_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    plan: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)

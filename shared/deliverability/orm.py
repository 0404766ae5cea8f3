"""Tables owned by deliverability: mailboxes, send counters and reservations, suppressions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
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

from shared.db.base import Base, TenantScoped, TimestampedMixin

MAILBOX_PROVIDERS = ("gmail", "graph", "sandbox")
MAILBOX_STATUSES = ("active", "paused")
HEALTH_STATUSES = ("ok", "throttle", "pause")
COUNTER_SCOPES = ("mailbox_day", "mailbox_hour", "mailbox_new_day", "campaign_day", "tenant_day")
RESERVATION_STATUSES = ("reserved", "released", "consumed")
SUPPRESSION_KINDS = ("address", "domain")
SUPPRESSION_REASONS = ("unsubscribe", "manual", "import", "bounce", "complaint")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


class Mailbox(TimestampedMixin, TenantScoped):
    """A sending mailbox with its caps (windows are in its own time zone) and health."""

    __tablename__ = "mailboxes"
    __table_args__ = (
        UniqueConstraint("tenant_id", "address"),
        UniqueConstraint("tenant_id", "id"),
        CheckConstraint(_in("provider", MAILBOX_PROVIDERS), name="provider"),
        CheckConstraint(_in("status", MAILBOX_STATUSES), name="status"),
        CheckConstraint(_in("health_status", HEALTH_STATUSES), name="health_status"),
        CheckConstraint("address = lower(address)", name="address_lowercase"),
        CheckConstraint(
            "daily_cap >= 0 AND hourly_cap >= 0 AND new_recipients_cap >= 0", name="caps"
        ),
    )

    address: Mapped[str] = mapped_column(String(320), nullable=False)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    daily_cap: Mapped[int] = mapped_column(Integer, nullable=False)
    hourly_cap: Mapped[int] = mapped_column(Integer, nullable=False)
    new_recipients_cap: Mapped[int] = mapped_column(Integer, nullable=False)
    health_score: Mapped[float] = mapped_column(Float, nullable=False, default=1.0)
    health_status: Mapped[str] = mapped_column(String(16), nullable=False, default="ok")
    bounce_rate: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    complaint_rate: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    health_sample_size: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    health_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class SendCounter(Base):
    """How many sends one scope used in one window. Reserved with a guarded upsert."""

    __tablename__ = "send_counters"
    __table_args__ = (
        CheckConstraint(_in("scope", COUNTER_SCOPES), name="scope"),
        CheckConstraint("used >= 0", name="used_non_negative"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("tenants.id", ondelete="RESTRICT"),
        primary_key=True,
    )
    scope: Mapped[str] = mapped_column(String(24), primary_key=True)
    scope_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used: Mapped[int] = mapped_column(Integer, nullable=False)
    # The cap the last reservation was checked against (caps can change within a window).
    cap: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class MailboxRecipient(Base):
    """First contact of an address from a mailbox: what makes a recipient "new" for the cap."""

    __tablename__ = "mailbox_recipients"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "mailbox_id"], ["mailboxes.tenant_id", "mailboxes.id"], ondelete="CASCADE"
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True),
        ForeignKey("tenants.id", ondelete="RESTRICT"),
        primary_key=True,
    )
    mailbox_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), primary_key=True)
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    reservation_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    first_contacted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class SendReservation(TimestampedMixin, TenantScoped):
    """The counters one send holds, so an abandoned send can give them back exactly once."""

    __tablename__ = "send_reservations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        ForeignKeyConstraint(
            ["tenant_id", "mailbox_id"], ["mailboxes.tenant_id", "mailboxes.id"], ondelete="CASCADE"
        ),
        Index("ix_send_reservations_tenant_id_mailbox_id", "tenant_id", "mailbox_id"),
        CheckConstraint(_in("status", RESERVATION_STATUSES), name="status"),
    )

    mailbox_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    campaign_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    recipient: Mapped[str] = mapped_column(String(320), nullable=False)
    new_recipient: Mapped[bool] = mapped_column(Boolean, nullable=False)
    counters: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="reserved")
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Suppression(TimestampedMixin, TenantScoped):
    """Do-not-contact: an address, or a whole domain (and its subdomains)."""

    __tablename__ = "suppressions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "value"),
        UniqueConstraint("tenant_id", "id"),
        Index("ix_suppressions_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
        CheckConstraint(_in("kind", SUPPRESSION_KINDS), name="kind"),
        CheckConstraint(_in("reason", SUPPRESSION_REASONS), name="reason"),
        CheckConstraint("value = lower(value)", name="value_lowercase"),
    )

    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    value: Mapped[str] = mapped_column(String(320), nullable=False)
    reason: Mapped[str] = mapped_column(String(16), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(256), nullable=False)

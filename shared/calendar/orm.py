"""Tables owned by calendar: the sandbox provider's busy blocks and events."""

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

EVENT_STATUSES = ("confirmed", "cancelled")


def _mailbox_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "mailbox_id"], ["mailboxes.tenant_id", "mailboxes.id"], ondelete="CASCADE"
    )


class SandboxBusyBlock(TimestampedMixin, TenantScoped):
    """Time the sandbox calendar's owner is busy outside the events we created."""

    __tablename__ = "sandbox_calendar_busy"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        _mailbox_fk(),
        Index("ix_sandbox_calendar_busy_window", "tenant_id", "mailbox_id", "starts_at"),
        CheckConstraint("ends_at > starts_at", name="positive_duration"),
    )

    mailbox_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    summary: Mapped[str | None] = mapped_column(Text)


class SandboxCalendarEvent(TimestampedMixin, TenantScoped):
    """An event on a sandbox calendar, keyed by its iCalendar UID, with the invite sent."""

    __tablename__ = "sandbox_calendar_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "mailbox_id", "uid"),
        _mailbox_fk(),
        Index("ix_sandbox_calendar_events_window", "tenant_id", "mailbox_id", "starts_at"),
        CheckConstraint("ends_at > starts_at", name="positive_duration"),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in EVENT_STATUSES) + ")", name="status"
        ),
        CheckConstraint("sequence >= 0", name="sequence"),
    )

    mailbox_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    uid: Mapped[str] = mapped_column(String(255), nullable=False)
    organizer: Mapped[str] = mapped_column(String(320), nullable=False)
    attendees: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    summary: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="confirmed")
    sequence: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The last iCalendar object sent to attendees (REQUEST, then CANCEL).
    ics: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )

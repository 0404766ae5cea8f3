"""Audit tables: per-tenant chains, the platform chain, their heads and checkpoints.

Rows are never updated or deleted (a trigger refuses it; see migration 0002). A head row per
chain holds the last seq and hash and is locked by every append, which serializes appends
per chain inside the caller's transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from shared.audit.model import GENESIS_HASH
from shared.db.base import Base

HASH_LENGTH = 64


class _EventColumns:
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    actor: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    event_json: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    correlation_id: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    payload_hash: Mapped[str] = mapped_column(String(HASH_LENGTH), nullable=False)
    prev_hash: Mapped[str] = mapped_column(String(HASH_LENGTH), nullable=False)
    hash: Mapped[str] = mapped_column(String(HASH_LENGTH), nullable=False)
    # Set by the appender (it is part of the hashed record), never by a server default.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class _HeadColumns:
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    hash: Mapped[str] = mapped_column(
        String(HASH_LENGTH), nullable=False, server_default=GENESIS_HASH
    )
    last_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class _CheckpointColumns:
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    first_seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    tree_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    root: Mapped[str] = mapped_column(String(HASH_LENGTH), nullable=False)
    # Roots of the perfect subtrees at tree_size: the next checkpoint extends them.
    frontier: Mapped[list[str]] = mapped_column(JSONB, nullable=False)
    statement: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    key_id: Mapped[str] = mapped_column(String(512), nullable=False)
    signature: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    bundle_path: Mapped[str | None] = mapped_column(String(512))
    exported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class _TenantKey:
    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805 (declared_attr receives the class)
        return mapped_column(
            PG_UUID(as_uuid=True),
            ForeignKey("tenants.id", ondelete="RESTRICT"),
            primary_key=True,
        )


class AuditEvent(_TenantKey, _EventColumns, Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_tenant_id_event_type_seq", "tenant_id", "event_type", "seq"),
        Index("ix_audit_events_tenant_id_correlation_id", "tenant_id", "correlation_id"),
    )


class AuditHead(_HeadColumns, Base):
    __tablename__ = "audit_heads"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("tenants.id", ondelete="RESTRICT"), primary_key=True
    )


class AuditCheckpoint(_TenantKey, _CheckpointColumns, Base):
    __tablename__ = "audit_checkpoints"


class PlatformAuditEvent(_EventColumns, Base):
    __tablename__ = "platform_audit_events"
    __table_args__ = (
        Index("ix_platform_audit_events_event_type_seq", "event_type", "seq"),
        Index("ix_platform_audit_events_correlation_id", "correlation_id"),
    )


class PlatformAuditHead(_HeadColumns, Base):
    __tablename__ = "platform_audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, server_default="1")


class PlatformAuditCheckpoint(_CheckpointColumns, Base):
    __tablename__ = "platform_audit_checkpoints"


class AuditBreakGlassEntry(Base):
    """Written by the append-only trigger whenever the owner's break-glass path changes a row."""

    __tablename__ = "audit_break_glass_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.clock_timestamp()
    )
    db_user: Mapped[str] = mapped_column(Text, nullable=False, server_default=func.session_user())
    table_name: Mapped[str] = mapped_column(Text, nullable=False)
    operation: Mapped[str] = mapped_column(Text, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    old_row: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    new_row: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

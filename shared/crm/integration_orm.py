"""An external CRM beside ASEP's own records: the connection (tokens sealed per tenant), the
id mapping, the writes waiting to reach the CRM, stage mappings, OAuth states and webhook
events. Every table is tenant-scoped under RLS."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import TenantScoped, TimestampedMixin

PROVIDERS = ("hubspot",)
INTEGRATION_STATUSES = ("connected", "disconnected", "revoked")
WRITE_OPERATIONS = ("upsert", "create", "update", "associate")
WRITE_STATUSES = ("pending", "held", "done", "rejected")
STAGE_INTENTS = ("POSITIVE_REPLY", "MEETING_BOOKED", "QUALIFIED", "DISQUALIFIED")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _updated_at() -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class CrmIntegration(TimestampedMixin, TenantScoped):
    __tablename__ = "crm_integrations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "provider"),
        CheckConstraint(_in("provider", PROVIDERS), name="provider"),
        CheckConstraint(_in("status", INTEGRATION_STATUSES), name="status"),
    )

    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    portal_id: Mapped[str | None] = mapped_column(String(32))
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(100)), nullable=False, default=list)
    # Envelope (shared/secrets/envelope.py) of {"access_token", "refresh_token"}; never plain.
    tokens: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    access_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    connected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = _updated_at()


class CrmOAuthState(TimestampedMixin, TenantScoped):
    __tablename__ = "crm_oauth_states"
    __table_args__ = (
        UniqueConstraint("tenant_id", "state_hash"),
        CheckConstraint(_in("provider", PROVIDERS), name="provider"),
    )

    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    state_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_by: Mapped[str] = mapped_column(String(256), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CrmMapping(TimestampedMixin, TenantScoped):
    """ASEP record (crm_objects.id) -> the CRM's id for it, once per provider."""

    __tablename__ = "crm_mappings"
    __table_args__ = (
        UniqueConstraint("tenant_id", "provider", "internal_type", "internal_id"),
        Index(
            "ix_crm_mappings_tenant_id_provider_internal_type_external_id",
            "tenant_id",
            "provider",
            "internal_type",
            "external_id",
        ),
        CheckConstraint(_in("provider", PROVIDERS), name="provider"),
    )

    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    internal_type: Mapped[str] = mapped_column(String(24), nullable=False)
    internal_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    external_id: Mapped[str] = mapped_column(String(64), nullable=False)
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False)


class CrmPendingWrite(TimestampedMixin, TenantScoped):
    """A write on its way to the CRM: pending, held (with a reason), done or rejected."""

    __tablename__ = "crm_pending_writes"
    __table_args__ = (
        UniqueConstraint("tenant_id", "provider", "idempotency_key"),
        Index("ix_crm_pending_writes_tenant_id_status_seq", "tenant_id", "status", "seq"),
        CheckConstraint(_in("provider", PROVIDERS), name="provider"),
        CheckConstraint(_in("operation", WRITE_OPERATIONS), name="operation"),
        CheckConstraint(_in("status", WRITE_STATUSES), name="status"),
    )

    # Creation order, so a contact reaches the CRM before the email logged against it.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), nullable=False)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    operation: Mapped[str] = mapped_column(String(16), nullable=False)
    object_type: Mapped[str] = mapped_column(String(24), nullable=False)
    internal_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    external_id: Mapped[str | None] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(40), nullable=False, default="asep")
    updated_at: Mapped[datetime] = _updated_at()


class CrmStageMapping(TimestampedMixin, TenantScoped):
    __tablename__ = "crm_stage_mappings"
    __table_args__ = (
        UniqueConstraint("tenant_id", "provider", "intent"),
        CheckConstraint(_in("provider", PROVIDERS), name="provider"),
        CheckConstraint(_in("intent", STAGE_INTENTS), name="intent"),
    )

    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    intent: Mapped[str] = mapped_column(String(24), nullable=False)
    pipeline_id: Mapped[str] = mapped_column(String(64), nullable=False)
    stage_id: Mapped[str] = mapped_column(String(64), nullable=False)
    updated_at: Mapped[datetime] = _updated_at()


class CrmWebhookEvent(TimestampedMixin, TenantScoped):
    """One row per CRM webhook event id: the dedupe key, and what processing did with it."""

    __tablename__ = "crm_webhook_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "provider", "event_id"),
        CheckConstraint(_in("provider", PROVIDERS), name="provider"),
    )

    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    event_id: Mapped[str] = mapped_column(String(64), nullable=False)
    subscription_type: Mapped[str] = mapped_column(String(64), nullable=False)
    object_id: Mapped[str | None] = mapped_column(String(64))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(64))

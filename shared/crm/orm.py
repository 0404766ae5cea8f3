"""ASEP's own CRM records: the internal provider's store and the system of record beneath
any external CRM. Every object and association is tenant-scoped."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, String, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import TenantScoped, TimestampedMixin


class CrmObject(TimestampedMixin, TenantScoped):
    __tablename__ = "crm_objects"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "idempotency_key"),
        Index(
            "ix_crm_objects_tenant_id_object_type_natural_key",
            "tenant_id",
            "object_type",
            "natural_key",
            unique=True,
            postgresql_where=text("natural_key IS NOT NULL"),
        ),
    )

    object_type: Mapped[str] = mapped_column(String(24), nullable=False)
    natural_key: Mapped[str | None] = mapped_column(String(320))
    idempotency_key: Mapped[str] = mapped_column(String(255), nullable=False)
    origin: Mapped[str] = mapped_column(String(40), nullable=False, default="asep")
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class CrmAssociation(TimestampedMixin, TenantScoped):
    __tablename__ = "crm_associations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "from_id", "to_id"),
        Index("ix_crm_associations_tenant_id_to_id", "tenant_id", "to_id"),
    )

    from_type: Mapped[str] = mapped_column(String(24), nullable=False)
    from_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    to_type: Mapped[str] = mapped_column(String(24), nullable=False)
    to_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)

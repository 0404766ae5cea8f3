"""Tables owned by identity: tenants and users."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, Index, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, TenantScoped, TimestampedMixin


class Tenant(TimestampedMixin, Base):
    """A customer. RLS keys this table on `id`: a tenant sees only its own row."""

    __tablename__ = "tenants"
    __table_args__ = (CheckConstraint("status IN ('active', 'suspended')", name="status"),)

    id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), primary_key=True, default=uuid.uuid4
    )
    slug: Mapped[str] = mapped_column(String(63), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    plan: Mapped[str] = mapped_column(String(32), nullable=False, default="pilot")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)


class User(TimestampedMixin, TenantScoped):
    """A person in a tenant, keyed on (issuer, subject) from their IdP, never on email."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("tenant_id", "issuer", "subject"),
        UniqueConstraint("tenant_id", "id"),
        Index("ix_users_tenant_id_email", "tenant_id", "email"),
        CheckConstraint(
            "role IN ('owner', 'admin', 'revops', 'manager', 'operator', 'auditor')", name="role"
        ),
    )

    issuer: Mapped[str] = mapped_column(String(512), nullable=False)
    subject: Mapped[str] = mapped_column(String(256), nullable=False)
    email: Mapped[str | None] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    auth_provider: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )

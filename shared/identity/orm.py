"""Tables owned by identity: tenants, users, SSO connections, API keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
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


class SsoConnection(TimestampedMixin, TenantScoped):
    """An identity provider this tenant signs in with. Its issuer routes tokens to the tenant."""

    __tablename__ = "sso_connections"
    __table_args__ = (
        UniqueConstraint("tenant_id", "issuer"),
        UniqueConstraint("tenant_id", "id"),
        CheckConstraint("provider IN ('entra', 'okta', 'oidc', 'dev')", name="provider"),
        CheckConstraint(
            "jit_role IS NULL OR jit_role IN ('admin', 'revops', 'manager', 'operator', 'auditor')",
            name="jit_role",
        ),
    )

    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    issuer: Mapped[str] = mapped_column(String(512), nullable=False)
    audiences: Mapped[list[str]] = mapped_column(ARRAY(String(512)), nullable=False)
    jwks_uri: Mapped[str] = mapped_column(String(1024), nullable=False)
    entra_tenant_id: Mapped[str | None] = mapped_column(String(64))
    # Just-in-time provisioning: a first sign-in from this IdP creates the user with this role.
    jit_role: Mapped[str | None] = mapped_column(String(16))


class ApiKey(TimestampedMixin, TenantScoped):
    """A scoped key for automation. Only a hash of the secret is stored; the prefix routes it."""

    __tablename__ = "api_keys"
    __table_args__ = (
        UniqueConstraint("tenant_id", "prefix"),
        UniqueConstraint("tenant_id", "id"),
        ForeignKeyConstraint(
            ["tenant_id", "created_by"], ["users.tenant_id", "users.id"], ondelete="RESTRICT"
        ),
        Index("ix_api_keys_tenant_id_created_by", "tenant_id", "created_by"),
    )

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    prefix: Mapped[str] = mapped_column(String(32), nullable=False)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(64)), nullable=False)
    created_by: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

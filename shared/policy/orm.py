"""Tables owned by the policy engine: pack versions, the active pointer, recorded decisions and
kill switches.

Pack versions and decisions are append-only (the app role may only SELECT and INSERT them;
see migration 0004): a saved version never changes, so a decision that names it can always
be explained, and backtests replay exactly what was decided.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, TenantScoped, TimestampedMixin

HASH_LENGTH = 64


class PolicyPackVersion(TimestampedMixin, TenantScoped):
    __tablename__ = "policy_pack_versions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        UniqueConstraint("tenant_id", "version"),
    )

    pack_id: Mapped[str] = mapped_column(String(100), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # The validated document (normalized), what evaluation compiles.
    document: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    # The text as submitted (YAML comments included), what people read and diff.
    source_text: Mapped[str] = mapped_column(Text, nullable=False)
    source_sha256: Mapped[str] = mapped_column(String(HASH_LENGTH), nullable=False)
    rule_count: Mapped[int] = mapped_column(Integer, nullable=False)
    created_by: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)


class ActivePolicyPack(Base):
    """One row per tenant that activated a pack of its own; none means the shipped default."""

    __tablename__ = "active_policy_packs"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "pack_version_id"],
            ["policy_pack_versions.tenant_id", "policy_pack_versions.id"],
            ondelete="RESTRICT",
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("tenants.id", ondelete="RESTRICT"), primary_key=True
    )
    pack_version_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    activated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    activated_by: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)


class PolicyDecisionRecord(TenantScoped):
    """Every audited decision with its full input, so a proposed pack can be backtested."""

    __tablename__ = "policy_decisions"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id"),
        ForeignKeyConstraint(
            ["tenant_id", "pack_version_id"],
            ["policy_pack_versions.tenant_id", "policy_pack_versions.id"],
            ondelete="RESTRICT",
        ),
        Index("ix_policy_decisions_tenant_id_decided_at", "tenant_id", "decided_at"),
    )

    # clock_timestamp(), not now(): decisions made in one transaction still order.
    decided_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("clock_timestamp()"), nullable=False
    )
    pack_id: Mapped[str] = mapped_column(String(100), nullable=False)
    pack_version: Mapped[int] = mapped_column(Integer, nullable=False)
    # Null for the shipped default pack, which has no row.
    pack_version_id: Mapped[uuid.UUID | None] = mapped_column(PG_UUID(as_uuid=True))
    action_type: Mapped[str] = mapped_column(String(32), nullable=False)
    stage: Mapped[str] = mapped_column(String(16), nullable=False)
    input: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    input_hash: Mapped[str] = mapped_column(String(HASH_LENGTH), nullable=False)
    outcome: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    matched_rules: Mapped[list[str]] = mapped_column(ARRAY(String(100)), nullable=False)
    allowed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    audit_seq: Mapped[int | None] = mapped_column(BigInteger)


class KillSwitch(Base):
    """The tenant-wide switch, one row per tenant. Policy checks read it FOR SHARE and every
    activation (tenant or campaign) updates it, so an activation waits for the decisions in
    flight and every decision after its commit sees it."""

    __tablename__ = "kill_switches"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        PG_UUID(as_uuid=True), ForeignKey("tenants.id", ondelete="RESTRICT"), primary_key=True
    )
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    reason: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")


class CampaignKillSwitch(TenantScoped):
    __tablename__ = "campaign_kill_switches"
    __table_args__ = (
        UniqueConstraint("tenant_id", "campaign_id"),
        ForeignKeyConstraint(
            ["tenant_id", "campaign_id"],
            ["campaigns.tenant_id", "campaigns.id"],
            ondelete="CASCADE",
        ),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(PG_UUID(as_uuid=True), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    reason: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    changed_by: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

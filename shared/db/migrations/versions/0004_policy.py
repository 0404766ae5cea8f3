"""Policy engine: pack versions, the active pack, recorded decisions, kill switches.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.config import get_settings
from shared.db.rls import tenant_isolation

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _created_at(name: str = "created_at") -> sa.Column[Any]:
    return sa.Column(
        name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="RESTRICT",
    )


def _pack_version_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "pack_version_id"],
        ["policy_pack_versions.tenant_id", "policy_pack_versions.id"],
        name=op.f(f"fk_{table}_tenant_id_pack_version_id_policy_pack_versions"),
        ondelete="RESTRICT",
    )


def upgrade() -> None:
    op.create_table(
        "policy_pack_versions",
        sa.Column("pack_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("document", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("source_text", sa.Text(), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("rule_count", sa.Integer(), nullable=False),
        sa.Column("created_by", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _created_at(),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        _tenant_fk("policy_pack_versions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_pack_versions")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_policy_pack_versions_tenant_id_id")),
        sa.UniqueConstraint(
            "tenant_id", "version", name=op.f("uq_policy_pack_versions_tenant_id_version")
        ),
    )
    op.create_table(
        "active_policy_packs",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("pack_version_id", sa.UUID(), nullable=False),
        _created_at("activated_at"),
        sa.Column("activated_by", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        _tenant_fk("active_policy_packs"),
        _pack_version_fk("active_policy_packs"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_active_policy_packs")),
    )
    op.create_table(
        "policy_decisions",
        sa.Column(
            "decided_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("pack_id", sa.String(length=100), nullable=False),
        sa.Column("pack_version", sa.Integer(), nullable=False),
        sa.Column("pack_version_id", sa.UUID(), nullable=True),
        sa.Column("action_type", sa.String(length=32), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("input", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("outcome", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("matched_rules", postgresql.ARRAY(sa.String(length=100)), nullable=False),
        sa.Column("allowed", sa.Boolean(), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        _tenant_fk("policy_decisions"),
        _pack_version_fk("policy_decisions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_decisions")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_policy_decisions_tenant_id_id")),
    )
    op.create_index(
        "ix_policy_decisions_tenant_id_decided_at",
        "policy_decisions",
        ["tenant_id", "decided_at"],
        unique=False,
    )
    op.create_table(
        "kill_switches",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_by", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("generation", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        _tenant_fk("kill_switches"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_kill_switches")),
    )
    op.create_table(
        "campaign_kill_switches",
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("changed_by", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        _tenant_fk("campaign_kill_switches"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "campaign_id"],
            ["campaigns.tenant_id", "campaigns.id"],
            name=op.f("fk_campaign_kill_switches_tenant_id_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_kill_switches")),
        sa.UniqueConstraint(
            "tenant_id", "campaign_id", name=op.f("uq_campaign_kill_switches_tenant_id_campaign_id")
        ),
    )
    app_role = get_settings().app_role
    # Versions and decisions are append-only for the app: immutable by grant, not by habit.
    for table in ("policy_pack_versions", "policy_decisions"):
        for statement in tenant_isolation(table, app_role, privileges="SELECT, INSERT"):
            op.execute(statement)
    for statement in tenant_isolation(
        "active_policy_packs", app_role, privileges="SELECT, INSERT, UPDATE"
    ):
        op.execute(statement)
    # UPDATE is also what SELECT ... FOR SHARE needs on the kill switch row.
    for table in ("kill_switches", "campaign_kill_switches"):
        for statement in tenant_isolation(table, app_role, privileges="SELECT, INSERT, UPDATE"):
            op.execute(statement)


def downgrade() -> None:
    op.drop_table("campaign_kill_switches")
    op.drop_table("kill_switches")
    op.drop_index("ix_policy_decisions_tenant_id_decided_at", table_name="policy_decisions")
    op.drop_table("policy_decisions")
    op.drop_table("active_policy_packs")
    op.drop_table("policy_pack_versions")

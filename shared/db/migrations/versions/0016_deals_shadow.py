"""Deals: deals_shadow, every deal ASEP created or updated and every reply it did not turn
into one (pending approval, held, blocked).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.config import get_settings
from shared.db.rls import tenant_isolation

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deals_shadow",
        sa.Column("prospect_id", sa.UUID(), nullable=True),
        sa.Column("company_id", sa.UUID(), nullable=True),
        sa.Column("company_domain", sa.String(length=253), nullable=True),
        sa.Column("campaign_id", sa.UUID(), nullable=True),
        sa.Column("stage", sa.String(length=24), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("crm_provider", sa.String(length=32), nullable=True),
        sa.Column("crm_external_id", sa.String(length=64), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("source_reply_id", sa.UUID(), nullable=True),
        sa.Column("last_reply_id", sa.UUID(), nullable=True),
        sa.Column("approval_id", sa.UUID(), nullable=True),
        sa.Column("decision_id", sa.String(length=64), nullable=True),
        sa.Column("correlation_id", sa.String(length=200), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column(
            "tenant_id", sa.UUID(), sa.ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name="pk_deals_shadow"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_deals_shadow_tenant_id_id"),
        sa.UniqueConstraint(
            "tenant_id", "source_reply_id", name="uq_deals_shadow_tenant_id_source_reply_id"
        ),
        sa.CheckConstraint(
            "stage IN ('POSITIVE_REPLY', 'MEETING_BOOKED', 'QUALIFIED', 'DISQUALIFIED')",
            name="ck_deals_shadow_stage",
        ),
        sa.CheckConstraint(
            "status IN ('created', 'pending_approval', 'held', 'blocked')",
            name="ck_deals_shadow_status",
        ),
        sa.CheckConstraint("source IN ('reply', 'meeting')", name="ck_deals_shadow_source"),
        sa.CheckConstraint(
            "confidence >= 0 AND confidence <= 1", name="ck_deals_shadow_confidence"
        ),
        sa.CheckConstraint(
            "status NOT IN ('held', 'blocked') OR reason IS NOT NULL",
            name="ck_deals_shadow_not_created_has_reason",
        ),
    )
    op.create_index(
        "ix_deals_shadow_tenant_id_created_at", "deals_shadow", ["tenant_id", "created_at"]
    )
    op.create_index(
        "ix_deals_shadow_tenant_id_prospect_id",
        "deals_shadow",
        ["tenant_id", "prospect_id", "created_at"],
    )
    op.create_index(
        "ix_deals_shadow_tenant_id_company_domain",
        "deals_shadow",
        ["tenant_id", "company_domain", "created_at"],
    )
    for statement in tenant_isolation("deals_shadow", get_settings().app_role):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("deals_shadow")

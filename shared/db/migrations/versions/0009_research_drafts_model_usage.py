"""Evidence for research, drafts grounded in it, and model usage for cost ceilings.

Revision ID: 0009
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.config import get_settings
from shared.db.rls import tenant_isolation

revision = "0009"
down_revision = "0006"
branch_labels = None
depends_on = None


def _base_columns() -> list[sa.Column[object]]:
    return [
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
    ]


def upgrade() -> None:
    op.create_table(
        "evidence",
        sa.Column("prospect_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("statement", sa.String(length=500), nullable=False),
        sa.Column("source_url", sa.String(length=2048), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        *_base_columns(),
        sa.ForeignKeyConstraint(
            ["tenant_id", "prospect_id"],
            ["prospects.tenant_id", "prospects.id"],
            name="fk_evidence_tenant_id_prospect_id_prospects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_evidence"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_evidence_tenant_id_id"),
        sa.UniqueConstraint(
            "tenant_id",
            "prospect_id",
            "content_hash",
            name="uq_evidence_tenant_id_prospect_id_content_hash",
        ),
    )
    op.create_index("ix_evidence_tenant_id_prospect_id", "evidence", ["tenant_id", "prospect_id"])
    op.create_table(
        "drafts",
        sa.Column("prospect_id", sa.UUID(), nullable=False),
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.Column("sequence_id", sa.UUID(), nullable=False),
        sa.Column("sequence_version", sa.Integer(), nullable=False),
        sa.Column("step_id", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("cta", sa.String(length=500), nullable=True),
        sa.Column("bullets", postgresql.JSONB(), nullable=False),
        sa.Column("claims", postgresql.JSONB(), nullable=False),
        sa.Column("evidence_ids", postgresql.ARRAY(sa.UUID()), nullable=False),
        sa.Column("content_risk", postgresql.JSONB(), nullable=False),
        sa.Column("evidence_summary", postgresql.JSONB(), nullable=False),
        sa.Column("model_provider", sa.String(length=40), nullable=False),
        sa.Column("model_name", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        *_base_columns(),
        sa.CheckConstraint(
            "status IN ('draft', 'pending_approval', 'approved', 'rejected', 'blocked', 'sent')",
            name="ck_drafts_status",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "prospect_id"],
            ["prospects.tenant_id", "prospects.id"],
            name="fk_drafts_tenant_id_prospect_id_prospects",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "campaign_id"],
            ["campaigns.tenant_id", "campaigns.id"],
            name="fk_drafts_tenant_id_campaign_id_campaigns",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "sequence_id"],
            ["sequences.tenant_id", "sequences.id"],
            name="fk_drafts_tenant_id_sequence_id_sequences",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_drafts"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_drafts_tenant_id_id"),
        sa.UniqueConstraint(
            "tenant_id",
            "campaign_id",
            "prospect_id",
            "step_id",
            name="uq_drafts_tenant_id_campaign_id_prospect_id_step_id",
        ),
    )
    op.create_index("ix_drafts_tenant_id_prospect_id", "drafts", ["tenant_id", "prospect_id"])
    op.create_table(
        "model_usage",
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("model", sa.String(length=80), nullable=False),
        sa.Column("task", sa.String(length=40), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(12, 6), nullable=False),
        *_base_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_model_usage"),
    )
    op.create_index(
        "ix_model_usage_tenant_id_created_at", "model_usage", ["tenant_id", "created_at"]
    )
    app_role = get_settings().app_role
    for table in ("evidence", "drafts", "model_usage"):
        for statement in tenant_isolation(table, app_role):
            op.execute(statement)


def downgrade() -> None:
    op.drop_table("model_usage")
    op.drop_table("drafts")
    op.drop_table("evidence")

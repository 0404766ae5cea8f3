"""Campaign members: the prospects a campaign reaches and each journey's state; when a
campaign's canary passed.

Revision ID: 0014
Revises: 0011
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.config import get_settings
from shared.db.rls import tenant_isolation

revision = "0014"
down_revision = "0011"
branch_labels = None
depends_on = None

STATUSES = ("pending", "running", "awaiting_approval", "held", "replied", "stopped", "completed")


def upgrade() -> None:
    op.create_table(
        "campaign_members",
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.Column("prospect_id", sa.UUID(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("canary", sa.Boolean(), nullable=False),
        sa.Column("touches_sent", sa.Integer(), nullable=False),
        sa.Column("last_step_id", sa.String(length=40), nullable=True),
        sa.Column("instance_id", sa.String(length=120), nullable=True),
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
        sa.CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")",
            name="ck_campaign_members_status",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "campaign_id"],
            ["campaigns.tenant_id", "campaigns.id"],
            name="fk_campaign_members_tenant_id_campaign_id_campaigns",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "prospect_id"],
            ["prospects.tenant_id", "prospects.id"],
            name="fk_campaign_members_tenant_id_prospect_id_prospects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_campaign_members"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_campaign_members_tenant_id_id"),
        sa.UniqueConstraint(
            "tenant_id",
            "campaign_id",
            "prospect_id",
            name="uq_campaign_members_tenant_id_campaign_id_prospect_id",
        ),
    )
    op.create_index(
        "ix_campaign_members_tenant_id_campaign_id_status",
        "campaign_members",
        ["tenant_id", "campaign_id", "status"],
    )
    for statement in tenant_isolation("campaign_members", get_settings().app_role):
        op.execute(statement)
    op.add_column("campaigns", sa.Column("canary_passed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("campaigns", "canary_passed_at")
    op.drop_table("campaign_members")

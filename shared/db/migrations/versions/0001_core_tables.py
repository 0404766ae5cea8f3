"""Core tables with tenant isolation: tenants, users, companies, prospects, campaigns, sequences.

Every tenant table gets RLS enabled and forced with the tenant_isolation policy and only the
privileges the app role needs; the directory gets its own read-all / write-own policies.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.config import get_settings
from shared.db.rls import directory_isolation, tenant_isolation

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("slug", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("plan", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("settings", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("status IN ('active', 'suspended')", name=op.f("ck_tenants_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("slug", name=op.f("uq_tenants_slug")),
    )
    op.create_table(
        "campaigns",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("target_persona", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("offer", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("settings", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
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
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.CheckConstraint(
            "status IN ('draft', 'pilot', 'active', 'paused', 'stopped', 'completed')",
            name=op.f("ck_campaigns_status"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_campaigns_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_campaigns_tenant_id_id")),
    )
    op.create_index(
        "ix_campaigns_tenant_id_status", "campaigns", ["tenant_id", "status"], unique=False
    )
    op.create_table(
        "companies",
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("industry", sa.String(length=120), nullable=True),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("employee_count", sa.Integer(), nullable=True),
        sa.Column("enrichment", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
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
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_companies_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_companies")),
        sa.UniqueConstraint("tenant_id", "domain", name=op.f("uq_companies_tenant_id_domain")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_companies_tenant_id_id")),
    )
    op.create_table(
        "tenant_directory",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("routing_key", sa.String(length=512), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_tenant_directory_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("kind", "routing_key", name=op.f("pk_tenant_directory")),
        comment="asep:directory",
    )
    op.create_index(
        op.f("ix_tenant_directory_tenant_id"), "tenant_directory", ["tenant_id"], unique=False
    )
    op.create_table(
        "users",
        sa.Column("issuer", sa.String(length=512), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("auth_provider", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
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
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.CheckConstraint(
            "role IN ('owner', 'admin', 'revops', 'manager', 'operator', 'auditor')",
            name=op.f("ck_users_role"),
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_users_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_users_tenant_id_id")),
        sa.UniqueConstraint(
            "tenant_id", "issuer", "subject", name=op.f("uq_users_tenant_id_issuer_subject")
        ),
    )
    op.create_index("ix_users_tenant_id_email", "users", ["tenant_id", "email"], unique=False)
    op.create_table(
        "prospects",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("first_name", sa.String(length=100), nullable=True),
        sa.Column("last_name", sa.String(length=100), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("company_id", sa.UUID(), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("enrichment", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
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
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.CheckConstraint("email = lower(email)", name=op.f("ck_prospects_email_lowercase")),
        sa.ForeignKeyConstraint(
            ["tenant_id", "company_id"],
            ["companies.tenant_id", "companies.id"],
            name=op.f("fk_prospects_tenant_id_company_id_companies"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_prospects_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prospects")),
        sa.UniqueConstraint("tenant_id", "email", name=op.f("uq_prospects_tenant_id_email")),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_prospects_tenant_id_id")),
    )
    op.create_index(
        "ix_prospects_tenant_id_company_id", "prospects", ["tenant_id", "company_id"], unique=False
    )
    op.create_table(
        "sequences",
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("steps", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "campaign_id"],
            ["campaigns.tenant_id", "campaigns.id"],
            name=op.f("fk_sequences_tenant_id_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_sequences_tenant_id_tenants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sequences")),
        sa.UniqueConstraint(
            "tenant_id",
            "campaign_id",
            "version",
            name=op.f("uq_sequences_tenant_id_campaign_id_version"),
        ),
        sa.UniqueConstraint("tenant_id", "id", name=op.f("uq_sequences_tenant_id_id")),
    )
    app_role = get_settings().app_role
    op.execute(f'GRANT USAGE ON SCHEMA public TO "{app_role}"')
    for statement in tenant_isolation(
        "tenants", app_role, key_column="id", privileges="SELECT, INSERT, UPDATE"
    ):
        op.execute(statement)
    for table in ("users", "companies", "prospects", "campaigns", "sequences"):
        for statement in tenant_isolation(table, app_role):
            op.execute(statement)
    for statement in directory_isolation("tenant_directory", app_role):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("sequences")
    op.drop_index("ix_prospects_tenant_id_company_id", table_name="prospects")
    op.drop_table("prospects")
    op.drop_index("ix_users_tenant_id_email", table_name="users")
    op.drop_table("users")
    op.drop_index(op.f("ix_tenant_directory_tenant_id"), table_name="tenant_directory")
    op.drop_table("tenant_directory")
    op.drop_table("companies")
    op.drop_index("ix_campaigns_tenant_id_status", table_name="campaigns")
    op.drop_table("campaigns")
    op.drop_table("tenants")

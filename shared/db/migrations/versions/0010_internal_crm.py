"""ASEP's internal CRM records: objects (companies, contacts, deals, engagements, ...) and
their associations.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.config import get_settings
from shared.db.rls import tenant_isolation

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _base() -> list[sa.Column[object]]:
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
        "crm_objects",
        sa.Column("object_type", sa.String(length=24), nullable=False),
        sa.Column("natural_key", sa.String(length=320), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("origin", sa.String(length=40), nullable=False),
        sa.Column("data", postgresql.JSONB(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        *_base(),
        sa.PrimaryKeyConstraint("id", name="pk_crm_objects"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_crm_objects_tenant_id_id"),
        sa.UniqueConstraint(
            "tenant_id", "idempotency_key", name="uq_crm_objects_tenant_id_idempotency_key"
        ),
    )
    op.create_index(
        "ix_crm_objects_tenant_id_object_type_natural_key",
        "crm_objects",
        ["tenant_id", "object_type", "natural_key"],
        unique=True,
        postgresql_where=sa.text("natural_key IS NOT NULL"),
    )
    op.create_table(
        "crm_associations",
        sa.Column("from_type", sa.String(length=24), nullable=False),
        sa.Column("from_id", sa.UUID(), nullable=False),
        sa.Column("to_type", sa.String(length=24), nullable=False),
        sa.Column("to_id", sa.UUID(), nullable=False),
        *_base(),
        sa.PrimaryKeyConstraint("id", name="pk_crm_associations"),
        sa.UniqueConstraint(
            "tenant_id", "from_id", "to_id", name="uq_crm_associations_tenant_id_from_id_to_id"
        ),
    )
    op.create_index(
        "ix_crm_associations_tenant_id_to_id", "crm_associations", ["tenant_id", "to_id"]
    )
    app_role = get_settings().app_role
    for table in ("crm_objects", "crm_associations"):
        for statement in tenant_isolation(table, app_role):
            op.execute(statement)


def downgrade() -> None:
    op.drop_table("crm_associations")
    op.drop_table("crm_objects")

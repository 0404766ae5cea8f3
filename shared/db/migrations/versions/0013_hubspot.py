"""External CRM (HubSpot): integrations with sealed tokens, OAuth states, id mappings,
pending writes, stage mappings and webhook events, all under tenant isolation.

Revision ID: 0013
Revises: 0011
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.schema import SchemaItem

from shared.config import get_settings
from shared.db.rls import tenant_isolation

revision = "0013"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLES = (
    "crm_integrations",
    "crm_oauth_states",
    "crm_mappings",
    "crm_pending_writes",
    "crm_stage_mappings",
    "crm_webhook_events",
)
PROVIDER_CHECK = "provider IN ('hubspot')"


def _base(table: str) -> list[SchemaItem]:
    return [
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.CheckConstraint(PROVIDER_CHECK, name="provider"),
    ]


def _updated_at() -> sa.Column[object]:
    return sa.Column(
        "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "crm_integrations",
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("portal_id", sa.String(length=32), nullable=True),
        sa.Column("scopes", postgresql.ARRAY(sa.String(length=100)), nullable=False),
        sa.Column("tokens", postgresql.JSONB(), nullable=True),
        sa.Column("access_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True),
        _updated_at(),
        *_base("crm_integrations"),
        sa.UniqueConstraint("tenant_id", "provider", name="uq_crm_integrations_tenant_id_provider"),
        sa.CheckConstraint(
            "status IN ('connected', 'disconnected', 'revoked')",
            name="status",
        ),
    )
    op.create_table(
        "crm_oauth_states",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        *_base("crm_oauth_states"),
        sa.UniqueConstraint(
            "tenant_id", "state_hash", name="uq_crm_oauth_states_tenant_id_state_hash"
        ),
    )
    op.create_table(
        "crm_mappings",
        sa.Column("internal_type", sa.String(length=24), nullable=False),
        sa.Column("internal_id", sa.UUID(), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        *_base("crm_mappings"),
        sa.UniqueConstraint(
            "tenant_id",
            "provider",
            "internal_type",
            "internal_id",
            name="uq_crm_mappings_tenant_id_provider_internal_type_internal_id",
        ),
    )
    op.create_index(
        "ix_crm_mappings_tenant_id_provider_internal_type_external_id",
        "crm_mappings",
        ["tenant_id", "provider", "internal_type", "external_id"],
    )
    op.create_table(
        "crm_pending_writes",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("object_type", sa.String(length=24), nullable=False),
        sa.Column("internal_id", sa.UUID(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column("origin", sa.String(length=40), nullable=False),
        _updated_at(),
        *_base("crm_pending_writes"),
        sa.UniqueConstraint(
            "tenant_id",
            "provider",
            "idempotency_key",
            name="uq_crm_pending_writes_tenant_id_provider_idempotency_key",
        ),
        sa.CheckConstraint(
            "operation IN ('upsert', 'create', 'update', 'associate')",
            name="operation",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'held', 'done', 'rejected')",
            name="status",
        ),
    )
    op.create_index(
        "ix_crm_pending_writes_tenant_id_status_seq",
        "crm_pending_writes",
        ["tenant_id", "status", "seq"],
    )
    op.create_table(
        "crm_stage_mappings",
        sa.Column("intent", sa.String(length=24), nullable=False),
        sa.Column("pipeline_id", sa.String(length=64), nullable=False),
        sa.Column("stage_id", sa.String(length=64), nullable=False),
        _updated_at(),
        *_base("crm_stage_mappings"),
        sa.UniqueConstraint(
            "tenant_id",
            "provider",
            "intent",
            name="uq_crm_stage_mappings_tenant_id_provider_intent",
        ),
        sa.CheckConstraint(
            "intent IN ('POSITIVE_REPLY', 'MEETING_BOOKED', 'QUALIFIED', 'DISQUALIFIED')",
            name="intent",
        ),
    )
    op.create_table(
        "crm_webhook_events",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("subscription_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        *_base("crm_webhook_events"),
        sa.UniqueConstraint(
            "tenant_id",
            "provider",
            "event_id",
            name="uq_crm_webhook_events_tenant_id_provider_event_id",
        ),
    )
    app_role = get_settings().app_role
    for table in TABLES:
        for statement in tenant_isolation(table, app_role):
            op.execute(statement)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)

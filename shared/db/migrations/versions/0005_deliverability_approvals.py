"""Deliverability and approvals: mailboxes, send counters and reservations, suppressions,
approvals and approved step templates, all under tenant isolation.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.config import get_settings
from shared.db.rls import tenant_isolation

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = (
    "mailboxes",
    "send_counters",
    "mailbox_recipients",
    "send_reservations",
    "suppressions",
    "approvals",
    "approved_step_templates",
)


def _created_at() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="RESTRICT"
    )


def upgrade() -> None:
    op.create_table(
        "mailboxes",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("daily_cap", sa.Integer(), nullable=False),
        sa.Column("hourly_cap", sa.Integer(), nullable=False),
        sa.Column("new_recipients_cap", sa.Integer(), nullable=False),
        sa.Column("health_score", sa.Float(), nullable=False),
        sa.Column("health_status", sa.String(length=16), nullable=False),
        sa.Column("bounce_rate", sa.Float(), nullable=False),
        sa.Column("complaint_rate", sa.Float(), nullable=False),
        sa.Column("health_sample_size", sa.Integer(), nullable=False),
        sa.Column("health_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        _created_at(),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.CheckConstraint(
            "health_status IN ('ok', 'throttle', 'pause')", name="ck_mailboxes_health_status"
        ),
        sa.CheckConstraint(
            "provider IN ('gmail', 'graph', 'sandbox')", name="ck_mailboxes_provider"
        ),
        sa.CheckConstraint("status IN ('active', 'paused')", name="ck_mailboxes_status"),
        sa.CheckConstraint("address = lower(address)", name="ck_mailboxes_address_lowercase"),
        sa.CheckConstraint(
            "daily_cap >= 0 AND hourly_cap >= 0 AND new_recipients_cap >= 0",
            name="ck_mailboxes_caps",
        ),
        _tenant_fk("mailboxes"),
        sa.PrimaryKeyConstraint("id", name="pk_mailboxes"),
        sa.UniqueConstraint("tenant_id", "address", name="uq_mailboxes_tenant_id_address"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_mailboxes_tenant_id_id"),
    )
    op.create_table(
        "send_counters",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("scope", sa.String(length=24), nullable=False),
        sa.Column("scope_key", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.Column("cap", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "scope IN ('mailbox_day', 'mailbox_hour', 'mailbox_new_day', 'campaign_day', "
            "'tenant_day')",
            name="ck_send_counters_scope",
        ),
        sa.CheckConstraint("used >= 0", name="ck_send_counters_used_non_negative"),
        _tenant_fk("send_counters"),
        sa.PrimaryKeyConstraint(
            "tenant_id", "scope", "scope_key", "window_start", name="pk_send_counters"
        ),
    )
    op.create_table(
        "mailbox_recipients",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.Column("mailbox_id", sa.UUID(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("reservation_id", sa.UUID(), nullable=True),
        sa.Column(
            "first_contacted_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "mailbox_id"],
            ["mailboxes.tenant_id", "mailboxes.id"],
            name="fk_mailbox_recipients_tenant_id_mailbox_id_mailboxes",
            ondelete="CASCADE",
        ),
        _tenant_fk("mailbox_recipients"),
        sa.PrimaryKeyConstraint("tenant_id", "mailbox_id", "address", name="pk_mailbox_recipients"),
    )
    op.create_table(
        "send_reservations",
        sa.Column("mailbox_id", sa.UUID(), nullable=False),
        sa.Column("campaign_id", sa.UUID(), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("new_recipient", sa.Boolean(), nullable=False),
        sa.Column("counters", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.CheckConstraint(
            "status IN ('reserved', 'released', 'consumed')", name="ck_send_reservations_status"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "mailbox_id"],
            ["mailboxes.tenant_id", "mailboxes.id"],
            name="fk_send_reservations_tenant_id_mailbox_id_mailboxes",
            ondelete="CASCADE",
        ),
        _tenant_fk("send_reservations"),
        sa.PrimaryKeyConstraint("id", name="pk_send_reservations"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_send_reservations_tenant_id_id"),
    )
    op.create_index(
        "ix_send_reservations_tenant_id_mailbox_id",
        "send_reservations",
        ["tenant_id", "mailbox_id"],
    )
    op.create_table(
        "suppressions",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        _created_at(),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.CheckConstraint("kind IN ('address', 'domain')", name="ck_suppressions_kind"),
        sa.CheckConstraint(
            "reason IN ('unsubscribe', 'manual', 'import', 'bounce', 'complaint')",
            name="ck_suppressions_reason",
        ),
        sa.CheckConstraint("value = lower(value)", name="ck_suppressions_value_lowercase"),
        _tenant_fk("suppressions"),
        sa.PrimaryKeyConstraint("id", name="pk_suppressions"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_suppressions_tenant_id_id"),
        sa.UniqueConstraint(
            "tenant_id", "kind", "value", name="uq_suppressions_tenant_id_kind_value"
        ),
    )
    op.create_index(
        "ix_suppressions_tenant_id_created_at_id",
        "suppressions",
        ["tenant_id", "created_at", "id"],
    )
    op.create_table(
        "approvals",
        sa.Column("action_kind", sa.String(length=32), nullable=False),
        sa.Column("action_id", sa.String(length=200), nullable=False),
        sa.Column("campaign_id", sa.UUID(), nullable=True),
        sa.Column("sequence_step", sa.Integer(), nullable=True),
        sa.Column("template_hash", sa.String(length=128), nullable=True),
        sa.Column("prospect_id", sa.UUID(), nullable=True),
        sa.Column("orchestration_instance_id", sa.String(length=200), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("decided_by", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("preview", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("evidence", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("decision_trace", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.CheckConstraint("mode IN ('once', 'every_time')", name="ck_approvals_mode"),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'expired')", name="ck_approvals_status"
        ),
        _tenant_fk("approvals"),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
        sa.UniqueConstraint(
            "tenant_id",
            "action_kind",
            "action_id",
            name="uq_approvals_tenant_id_action_kind_action_id",
        ),
        sa.UniqueConstraint("tenant_id", "id", name="uq_approvals_tenant_id_id"),
    )
    op.create_index(
        "ix_approvals_tenant_id_created_at_id", "approvals", ["tenant_id", "created_at", "id"]
    )
    op.create_index(
        "ix_approvals_tenant_id_status_expires_at",
        "approvals",
        ["tenant_id", "status", "expires_at"],
    )
    op.create_table(
        "approved_step_templates",
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.Column("sequence_step", sa.Integer(), nullable=False),
        sa.Column("template_hash", sa.String(length=128), nullable=False),
        sa.Column("approval_id", sa.UUID(), nullable=False),
        sa.Column("approved_by", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "approval_id"],
            ["approvals.tenant_id", "approvals.id"],
            name="fk_approved_step_templates_tenant_id_approval_id_approvals",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "campaign_id"],
            ["campaigns.tenant_id", "campaigns.id"],
            name="fk_approved_step_templates_tenant_id_campaign_id_campaigns",
            ondelete="CASCADE",
        ),
        _tenant_fk("approved_step_templates"),
        sa.PrimaryKeyConstraint("id", name="pk_approved_step_templates"),
        sa.UniqueConstraint(
            "tenant_id",
            "campaign_id",
            "sequence_step",
            "template_hash",
            name="uq_approved_step_templates_step",
        ),
    )
    op.create_index(
        "ix_approved_step_templates_tenant_id_approval_id",
        "approved_step_templates",
        ["tenant_id", "approval_id"],
    )
    app_role = get_settings().app_role
    for table in TABLES:
        for statement in tenant_isolation(table, app_role):
            op.execute(statement)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)

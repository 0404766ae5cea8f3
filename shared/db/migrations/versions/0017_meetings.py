"""Meetings: one row per booking flow (proposed slots, the prospect's choice, the event).

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.config import get_settings
from shared.db.rls import tenant_isolation

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

STATUSES = (
    "('proposing', 'proposed', 'booking', 'booked', 'declined', 'expired', 'cancelled', 'held')"
)


def _fk(column: str, table: str, ondelete: str | None = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", column],
        [f"{table}.tenant_id", f"{table}.id"],
        name=f"fk_meetings_tenant_id_{column}_{table}",
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "meetings",
        sa.Column("prospect_id", sa.UUID(), nullable=False),
        sa.Column("campaign_id", sa.UUID(), nullable=True),
        sa.Column("inbound_id", sa.UUID(), nullable=False),
        sa.Column("mailbox_id", sa.UUID(), nullable=False),
        sa.Column("deal_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("rep_time_zone", sa.String(length=64), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("proposed_slots", JSONB(), nullable=False),
        sa.Column("proposal_round", sa.Integer(), nullable=False),
        sa.Column("proposal_intent_id", sa.UUID(), nullable=True),
        sa.Column("chosen_index", sa.Integer(), nullable=True),
        sa.Column("chosen_slot", JSONB(), nullable=True),
        sa.Column("choice_source", sa.String(length=8), nullable=True),
        sa.Column("choice_inbound_id", sa.UUID(), nullable=True),
        sa.Column("calendar_event_uid", sa.String(length=255), nullable=True),
        sa.Column("correlation_id", sa.String(length=200), nullable=True),
        sa.Column("orchestration_instance_id", sa.String(length=200), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.PrimaryKeyConstraint("id", name="pk_meetings"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_meetings_tenant_id_id"),
        sa.UniqueConstraint("tenant_id", "inbound_id", name="uq_meetings_tenant_id_inbound_id"),
        _fk("prospect_id", "prospects"),
        _fk("campaign_id", "campaigns"),
        _fk("mailbox_id", "mailboxes"),
        _fk("inbound_id", "inbound_messages"),
        _fk("deal_id", "deals_shadow", ondelete=None),
        sa.CheckConstraint(f"status IN {STATUSES}", name="ck_meetings_status"),
        sa.CheckConstraint(
            "choice_source IS NULL OR choice_source IN ('link', 'reply')",
            name="ck_meetings_choice_source",
        ),
        sa.CheckConstraint("proposal_round >= 0", name="ck_meetings_proposal_round"),
        sa.CheckConstraint("duration_minutes > 0", name="ck_meetings_duration"),
        sa.CheckConstraint(
            "status <> 'booked' OR calendar_event_uid IS NOT NULL", name="ck_meetings_booked_uid"
        ),
    )
    op.create_index("ix_meetings_tenant_id_created_at", "meetings", ["tenant_id", "created_at"])
    op.create_index(
        "ix_meetings_tenant_id_prospect_id", "meetings", ["tenant_id", "prospect_id", "created_at"]
    )
    for statement in tenant_isolation("meetings", get_settings().app_role):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("meetings")

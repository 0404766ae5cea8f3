"""Mail and calendar: send intents, inbound messages, the sandbox mailbox's store and fault
plans, the sandbox calendar's busy blocks and events, all under tenant isolation.

Revision ID: 0008
Revises: 0005
(mailboxes come from 0005)
Create Date: 2026-11-28
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.config import get_settings
from shared.db.rls import tenant_isolation

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = (
    "send_intents",
    "inbound_messages",
    "sandbox_messages",
    "sandbox_fault_plans",
    "sandbox_calendar_busy",
    "sandbox_calendar_events",
)


def _created_at() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def _updated_at() -> sa.Column[object]:
    return sa.Column(
        "updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
    )


def _keys(table: str) -> list[Any]:
    return [
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants", ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.UniqueConstraint("tenant_id", "id", name=f"uq_{table}_tenant_id_id"),
    ]


def _mailbox_fk(table: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "mailbox_id"],
        ["mailboxes.tenant_id", "mailboxes.id"],
        name=f"fk_{table}_tenant_id_mailbox_id_mailboxes",
        ondelete=ondelete,
    )


def _jsonb_list(name: str) -> sa.Column[object]:
    return sa.Column(
        name,
        postgresql.JSONB(astext_type=sa.Text()),
        server_default=sa.text("'[]'::jsonb"),
        nullable=False,
    )


def upgrade() -> None:
    op.create_table(
        "send_intents",
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("mailbox_id", sa.UUID(), nullable=False),
        sa.Column("campaign_id", sa.UUID(), nullable=True),
        sa.Column("prospect_id", sa.UUID(), nullable=True),
        sa.Column("step_id", sa.String(length=64), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("in_reply_to", sa.String(length=255), nullable=True),
        _jsonb_list("references"),
        sa.Column("raw_message", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("reconcile_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempt_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unclear_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("provider_message_id", sa.String(length=255), nullable=True),
        sa.Column("provider_thread_id", sa.String(length=255), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("correlation_id", sa.String(length=200), nullable=True),
        _updated_at(),
        _created_at(),
        *_keys("send_intents"),
        _mailbox_fk("send_intents", "RESTRICT"),
        sa.UniqueConstraint(
            "tenant_id", "idempotency_key", name="uq_send_intents_tenant_id_idempotency_key"
        ),
        sa.UniqueConstraint("tenant_id", "message_id", name="uq_send_intents_tenant_id_message_id"),
        sa.CheckConstraint(
            "status IN ('pending', 'draft', 'sending', 'unknown', 'sent', 'held')",
            name="ck_send_intents_status",
        ),
        sa.CheckConstraint(
            "status <> 'held' OR status_reason IS NOT NULL",
            name="ck_send_intents_held_has_reason",
        ),
        sa.CheckConstraint(
            "attempts >= 0 AND reconcile_attempts >= 0", name="ck_send_intents_attempts"
        ),
        sa.CheckConstraint(
            "recipient = lower(recipient)", name="ck_send_intents_recipient_lowercase"
        ),
    )
    op.create_index("ix_send_intents_tenant_id_status", "send_intents", ["tenant_id", "status"])
    op.create_index(
        "ix_send_intents_tenant_id_campaign_id", "send_intents", ["tenant_id", "campaign_id"]
    )

    op.create_table(
        "inbound_messages",
        sa.Column("mailbox_id", sa.UUID(), nullable=False),
        sa.Column("dedupe_key", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("provider_id", sa.String(length=255), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("in_reply_to", sa.Text(), nullable=True),
        _jsonb_list("references"),
        sa.Column("content_type", sa.String(length=127), nullable=False),
        sa.Column("intent_id", sa.UUID(), nullable=True),
        sa.Column("campaign_id", sa.UUID(), nullable=True),
        sa.Column("prospect_id", sa.UUID(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        _jsonb_list("problems"),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("signal_state", sa.String(length=16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        _created_at(),
        *_keys("inbound_messages"),
        _mailbox_fk("inbound_messages", "RESTRICT"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "intent_id"],
            ["send_intents.tenant_id", "send_intents.id"],
            name="fk_inbound_messages_tenant_id_intent_id_send_intents",
        ),
        sa.UniqueConstraint(
            "tenant_id",
            "mailbox_id",
            "dedupe_key",
            name="uq_inbound_messages_tenant_id_mailbox_id_dedupe_key",
        ),
        sa.CheckConstraint(
            "signal_state IN ('none', 'pending', 'raised')",
            name="ck_inbound_messages_signal_state",
        ),
        sa.CheckConstraint("size_bytes >= 0", name="ck_inbound_messages_size_bytes"),
    )
    op.create_index(
        "ix_inbound_messages_tenant_id_signal_state",
        "inbound_messages",
        ["tenant_id", "signal_state"],
    )
    op.create_index(
        "ix_inbound_messages_tenant_id_intent_id", "inbound_messages", ["tenant_id", "intent_id"]
    )

    op.create_table(
        "sandbox_messages",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("mailbox_id", sa.UUID(), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=True),
        _jsonb_list("recipients"),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        _created_at(),
        *_keys("sandbox_messages"),
        _mailbox_fk("sandbox_messages", "CASCADE"),
        sa.CheckConstraint(
            "direction IN ('sent', 'inbound')", name="ck_sandbox_messages_direction"
        ),
    )
    op.create_index(
        "ix_sandbox_messages_mailbox_seq",
        "sandbox_messages",
        ["tenant_id", "mailbox_id", "direction", "seq"],
    )
    op.create_index(
        "ix_sandbox_messages_tenant_id_message_id", "sandbox_messages", ["tenant_id", "message_id"]
    )

    op.create_table(
        "sandbox_fault_plans",
        sa.Column("mailbox_id", sa.UUID(), nullable=False),
        sa.Column(
            "plan",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        _created_at(),
        *_keys("sandbox_fault_plans"),
        _mailbox_fk("sandbox_fault_plans", "CASCADE"),
        sa.UniqueConstraint(
            "tenant_id", "mailbox_id", name="uq_sandbox_fault_plans_tenant_id_mailbox_id"
        ),
    )

    op.create_table(
        "sandbox_calendar_busy",
        sa.Column("mailbox_id", sa.UUID(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        _created_at(),
        *_keys("sandbox_calendar_busy"),
        _mailbox_fk("sandbox_calendar_busy", "CASCADE"),
        sa.CheckConstraint(
            "ends_at > starts_at", name="ck_sandbox_calendar_busy_positive_duration"
        ),
    )
    op.create_index(
        "ix_sandbox_calendar_busy_window",
        "sandbox_calendar_busy",
        ["tenant_id", "mailbox_id", "starts_at"],
    )

    op.create_table(
        "sandbox_calendar_events",
        sa.Column("mailbox_id", sa.UUID(), nullable=False),
        sa.Column("uid", sa.String(length=255), nullable=False),
        sa.Column("organizer", sa.String(length=320), nullable=False),
        _jsonb_list("attendees"),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sequence", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("ics", sa.LargeBinary(), nullable=False),
        _updated_at(),
        _created_at(),
        *_keys("sandbox_calendar_events"),
        _mailbox_fk("sandbox_calendar_events", "CASCADE"),
        sa.UniqueConstraint(
            "tenant_id",
            "mailbox_id",
            "uid",
            name="uq_sandbox_calendar_events_tenant_id_mailbox_id_uid",
        ),
        sa.CheckConstraint(
            "ends_at > starts_at", name="ck_sandbox_calendar_events_positive_duration"
        ),
        sa.CheckConstraint(
            "status IN ('confirmed', 'cancelled')", name="ck_sandbox_calendar_events_status"
        ),
        sa.CheckConstraint("sequence >= 0", name="ck_sandbox_calendar_events_sequence"),
    )
    op.create_index(
        "ix_sandbox_calendar_events_window",
        "sandbox_calendar_events",
        ["tenant_id", "mailbox_id", "starts_at"],
    )

    app_role = get_settings().app_role
    for table in TABLES:
        for statement in tenant_isolation(table, app_role):
            op.execute(statement)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)

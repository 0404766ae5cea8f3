"""Reply intelligence: classifications (one per inbound message), intent events, human labels.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.config import get_settings
from shared.db.rls import tenant_isolation

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

LABELS = "('positive', 'neutral', 'objection', 'unsubscribe', 'ooo', 'bounce', 'complaint')"


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
        "replies",
        sa.Column("inbound_id", sa.UUID(), nullable=False),
        sa.Column("mailbox_id", sa.UUID(), nullable=False),
        sa.Column("intent_id", sa.UUID(), nullable=True),
        sa.Column("prospect_id", sa.UUID(), nullable=True),
        sa.Column("campaign_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("sub_label", sa.String(length=64), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("evidence", postgresql.JSONB(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("recommendation", sa.Text(), nullable=False),
        sa.Column("classifier_version", sa.String(length=100), nullable=False),
        sa.Column("reduced_text_sha256", sa.String(length=64), nullable=False),
        sa.Column("correlation_id", sa.String(length=200), nullable=True),
        sa.Column("human_label", sa.String(length=16), nullable=True),
        sa.Column("human_sub_label", sa.String(length=64), nullable=True),
        sa.Column("labelled_by", sa.String(length=256), nullable=True),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True),
        *_base(),
        sa.PrimaryKeyConstraint("id", name="pk_replies"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_replies_tenant_id_id"),
        sa.UniqueConstraint("tenant_id", "inbound_id", name="uq_replies_tenant_id_inbound_id"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "inbound_id"],
            ["inbound_messages.tenant_id", "inbound_messages.id"],
            name="fk_replies_tenant_id_inbound_id_inbound_messages",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("status IN ('classified', 'unclassifiable')", name="ck_replies_status"),
        sa.CheckConstraint(f"label IN {LABELS}", name="ck_replies_label"),
        sa.CheckConstraint(
            f"human_label IS NULL OR human_label IN {LABELS}", name="ck_replies_human_label"
        ),
        sa.CheckConstraint("confidence >= 0 AND confidence <= 1", name="ck_replies_confidence"),
        sa.CheckConstraint(
            "status <> 'unclassifiable' OR reason IS NOT NULL",
            name="ck_replies_unclassifiable_has_reason",
        ),
    )
    op.create_index("ix_replies_tenant_id_created_at", "replies", ["tenant_id", "created_at"])
    op.create_index("ix_replies_tenant_id_prospect_id", "replies", ["tenant_id", "prospect_id"])
    op.create_table(
        "intent_events",
        sa.Column("reply_id", sa.UUID(), nullable=False),
        sa.Column("intent_id", sa.UUID(), nullable=True),
        sa.Column("prospect_id", sa.UUID(), nullable=True),
        sa.Column("campaign_id", sa.UUID(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("sub_label", sa.String(length=64), nullable=True),
        sa.Column("evidence", postgresql.JSONB(), nullable=False),
        sa.Column("correlation_id", sa.String(length=200), nullable=True),
        *_base(),
        sa.PrimaryKeyConstraint("id", name="pk_intent_events"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_intent_events_tenant_id_id"),
        sa.UniqueConstraint("tenant_id", "reply_id", name="uq_intent_events_tenant_id_reply_id"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "reply_id"],
            ["replies.tenant_id", "replies.id"],
            name="fk_intent_events_tenant_id_reply_id_replies",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "confidence >= 0 AND confidence <= 1", name="ck_intent_events_confidence"
        ),
    )
    op.create_index(
        "ix_intent_events_tenant_id_created_at", "intent_events", ["tenant_id", "created_at"]
    )
    op.create_table(
        "reply_labels",
        sa.Column("reply_id", sa.UUID(), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("sub_label", sa.String(length=64), nullable=True),
        sa.Column("previous_label", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reduced_text", sa.Text(), nullable=False),
        sa.Column("labelled_by", sa.String(length=256), nullable=False),
        *_base(),
        sa.PrimaryKeyConstraint("id", name="pk_reply_labels"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_reply_labels_tenant_id_id"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "reply_id"],
            ["replies.tenant_id", "replies.id"],
            name="fk_reply_labels_tenant_id_reply_id_replies",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(f"label IN {LABELS}", name="ck_reply_labels_label"),
        sa.CheckConstraint(f"previous_label IN {LABELS}", name="ck_reply_labels_previous_label"),
    )
    op.create_index("ix_reply_labels_tenant_id_reply_id", "reply_labels", ["tenant_id", "reply_id"])
    app_role = get_settings().app_role
    for table in ("replies", "intent_events", "reply_labels"):
        for statement in tenant_isolation(table, app_role):
            op.execute(statement)


def downgrade() -> None:
    op.drop_table("reply_labels")
    op.drop_table("intent_events")
    op.drop_table("replies")

"""Audit log: per-tenant hash chains, the platform chain, heads, checkpoints, break-glass log.

The app role may only INSERT and SELECT events; it may UPDATE a head row (the append lock)
and record where a checkpoint's bundle was exported. A trigger refuses UPDATE, DELETE and
TRUNCATE of events and checkpoints for every role, except the owner taking the break-glass
path (`SET LOCAL asep.audit_break_glass = '<reason>'`), which the trigger records in
`audit_break_glass_log` in the same transaction. See docs/adr/0004.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.config import get_settings
from shared.db.rls import tenant_isolation

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GENESIS = "0" * 64
NO_TENANT = "(NULLIF(current_setting('app.tenant_id', true), '') IS NULL)"

EVENT_TABLES = ("audit_events", "platform_audit_events")
CHECKPOINT_TABLES = ("audit_checkpoints", "platform_audit_checkpoints")

APPEND_ONLY_FUNCTION = """
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    reason text := NULLIF(current_setting('asep.audit_break_glass', true), '');
    table_owner oid := (SELECT relowner FROM pg_class WHERE oid = TG_RELID);
BEGIN
    IF TG_ARGV[0] = 'checkpoint' AND TG_OP = 'UPDATE' THEN
        -- Recording where the bundle went, once, is the only change a checkpoint allows.
        IF OLD.exported_at IS NULL
           AND (to_jsonb(NEW) - 'exported_at' - 'bundle_path')
               = (to_jsonb(OLD) - 'exported_at' - 'bundle_path') THEN
            RETURN NEW;
        END IF;
    END IF;
    IF reason IS NULL OR NOT pg_has_role(current_user, table_owner, 'USAGE') THEN
        RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'owner only, after SET LOCAL asep.audit_break_glass; it is logged';
    END IF;
    INSERT INTO audit_break_glass_log (table_name, operation, reason, old_row, new_row)
    VALUES (
        TG_TABLE_NAME, TG_OP, reason,
        CASE WHEN TG_LEVEL = 'ROW' THEN to_jsonb(OLD) END,
        CASE WHEN TG_LEVEL = 'ROW' AND TG_OP = 'UPDATE' THEN to_jsonb(NEW) END
    );
    IF TG_LEVEL = 'STATEMENT' THEN
        RETURN NULL;
    ELSIF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$
"""

REFUSE_ALWAYS_FUNCTION = """
CREATE FUNCTION audit_break_glass_log_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_break_glass_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def _event_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("actor", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("event_json", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("correlation_id", sa.String(length=200), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _head_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("hash", sa.String(length=64), server_default=GENESIS, nullable=False),
        sa.Column("last_created_at", sa.DateTime(timezone=True), nullable=True),
    ]


def _checkpoint_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("frontier", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("statement", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("key_id", sa.String(length=512), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("bundle_path", sa.String(length=512), nullable=True),
        sa.Column("exported_at", sa.DateTime(timezone=True), nullable=True),
    ]


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="RESTRICT",
    )


def upgrade() -> None:
    op.create_table(
        "audit_break_glass_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column(
            "at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("db_user", sa.Text(), server_default=sa.text("session_user"), nullable=False),
        sa.Column("table_name", sa.Text(), nullable=False),
        sa.Column("operation", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("old_row", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("new_row", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_break_glass_log")),
    )
    op.create_table(
        "audit_events",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        *_event_columns(),
        _tenant_fk("audit_events"),
        sa.PrimaryKeyConstraint("tenant_id", "seq", name=op.f("pk_audit_events")),
    )
    op.create_index(
        "ix_audit_events_tenant_id_event_type_seq",
        "audit_events",
        ["tenant_id", "event_type", "seq"],
    )
    op.create_index(
        "ix_audit_events_tenant_id_correlation_id", "audit_events", ["tenant_id", "correlation_id"]
    )
    op.create_table(
        "audit_heads",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        *_head_columns(),
        _tenant_fk("audit_heads"),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_audit_heads")),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("tenant_id", sa.UUID(), nullable=False),
        *_checkpoint_columns(),
        _tenant_fk("audit_checkpoints"),
        sa.PrimaryKeyConstraint("tenant_id", "number", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "platform_audit_events",
        *_event_columns(),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_platform_audit_events")),
    )
    op.create_index(
        "ix_platform_audit_events_event_type_seq", "platform_audit_events", ["event_type", "seq"]
    )
    op.create_index(
        "ix_platform_audit_events_correlation_id", "platform_audit_events", ["correlation_id"]
    )
    op.create_table(
        "platform_audit_head",
        sa.Column("id", sa.SmallInteger(), server_default="1", nullable=False),
        *_head_columns(),
        sa.CheckConstraint("id = 1", name=op.f("ck_platform_audit_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_audit_head")),
    )
    op.execute("INSERT INTO platform_audit_head (id) VALUES (1)")
    op.create_table(
        "platform_audit_checkpoints",
        *_checkpoint_columns(),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_platform_audit_checkpoints")),
    )

    op.execute(APPEND_ONLY_FUNCTION)
    op.execute(REFUSE_ALWAYS_FUNCTION)
    for table in EVENT_TABLES:
        op.execute(
            f"CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_append_only('event')"
        )
        op.execute(
            f"CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only('event')"
        )
    for table in CHECKPOINT_TABLES:
        op.execute(
            f"CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_append_only('checkpoint')"
        )
        op.execute(
            f"CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only('checkpoint')"
        )
    op.execute(
        "CREATE TRIGGER immutable BEFORE UPDATE OR DELETE ON audit_break_glass_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_break_glass_log_immutable()"
    )
    op.execute(
        "CREATE TRIGGER immutable_truncate BEFORE TRUNCATE ON audit_break_glass_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_break_glass_log_immutable()"
    )

    app_role = get_settings().app_role
    grants = {
        "audit_events": "SELECT, INSERT",
        "audit_heads": "SELECT, INSERT, UPDATE (seq, hash, last_created_at)",
        "audit_checkpoints": "SELECT, INSERT, UPDATE (bundle_path, exported_at)",
    }
    for table, privileges in grants.items():
        for statement in tenant_isolation(table, app_role, privileges=privileges):
            op.execute(statement)
    # The platform chain: visible only in a transaction with no tenant set, so no tenant
    # request can read another tenant's refused logins or provisioning events.
    platform_grants = {
        "platform_audit_events": "SELECT, INSERT",
        "platform_audit_head": "SELECT, UPDATE (seq, hash, last_created_at)",
        "platform_audit_checkpoints": "SELECT, INSERT, UPDATE (bundle_path, exported_at)",
    }
    for table, privileges in platform_grants.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY platform_only ON {table} USING {NO_TENANT} WITH CHECK {NO_TENANT}"
        )
        op.execute(f"REVOKE ALL ON {table} FROM PUBLIC")
        op.execute(f'GRANT {privileges} ON {table} TO "{app_role}"')
    op.execute("REVOKE ALL ON audit_break_glass_log FROM PUBLIC")


def downgrade() -> None:
    for table in (
        "platform_audit_checkpoints",
        "platform_audit_head",
        "platform_audit_events",
        "audit_checkpoints",
        "audit_heads",
        "audit_events",
        "audit_break_glass_log",
    ):
        op.drop_table(table)
    op.execute("DROP FUNCTION audit_append_only()")
    op.execute("DROP FUNCTION audit_break_glass_log_immutable()")

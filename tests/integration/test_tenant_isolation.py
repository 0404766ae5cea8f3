"""Tenant isolation, proven from the catalog: every tenant table, present and future.

Tables are discovered from pg_catalog (any table with a tenant_id column, plus `tenants`),
rows are built from their catalog description, and each property is checked for every
table with all failures reported together.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from shared.config import get_settings
from shared.db.server import DatabaseUrls, libpq_dsn
from tests.conftest import make_tenant
from tests.integration.catalog import Table, build_row, tenant_tables

DIRECTORY_COLUMNS = {"kind", "routing_key", "tenant_id", "created_at"}
SET_TENANT = "SELECT set_config('app.tenant_id', %s, true)"


@pytest.fixture(scope="module")
def owner(database: DatabaseUrls) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(libpq_dsn(database.owner), autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def app_dsn(database: DatabaseUrls) -> str:
    return libpq_dsn(database.app)


@pytest.fixture(scope="module")
def tables(owner: psycopg.Connection[Any]) -> dict[str, Table]:
    found = tenant_tables(owner)
    assert {"tenants", "users", "companies", "prospects", "campaigns", "sequences"} <= found.keys()
    return found


@contextmanager
def as_tenant(dsn: str, tenant_id: uuid.UUID | None) -> Iterator[psycopg.Connection[Any]]:
    """One app-role transaction with the tenant set (or not), rolled back at the end."""
    with psycopg.connect(dsn) as conn:
        if tenant_id is not None:
            conn.execute(SET_TENANT, (str(tenant_id),))
        try:
            yield conn
        finally:
            conn.rollback()


@pytest.fixture(scope="module")
def two_tenants(app_dsn: str, tables: dict[str, Table]) -> tuple[uuid.UUID, uuid.UUID]:
    """Tenants A and B, each with at least one row in every tenant table, written as the app."""
    tenant_ids = (make_tenant("a").id, make_tenant("b").id)
    for tenant_id in tenant_ids:
        with psycopg.connect(app_dsn) as conn:
            conn.execute(SET_TENANT, (str(tenant_id),))
            for table in tables.values():
                if table.name != "tenants":
                    build_row(conn, tables, table.name, tenant_id)
            conn.commit()
    return tenant_ids


def _privilege(conn: psycopg.Connection[Any], table: str, privilege: str) -> bool:
    role = get_settings().app_role
    row = conn.execute(
        "SELECT has_table_privilege(%s, %s, %s)", (role, table, privilege)
    ).fetchone()
    return bool(row and row[0])


def _count(conn: psycopg.Connection[Any], table: Table, where: str = "true", *args: Any) -> int:
    query = sql.SQL("SELECT count(*) FROM {} WHERE " + where).format(sql.Identifier(table.name))
    row = conn.execute(query, args).fetchone()
    assert row is not None
    return int(row[0])


def test_every_tenant_table_has_rls_enabled_forced_and_a_policy(
    owner: psycopg.Connection[Any], tables: dict[str, Table]
) -> None:
    failures = []
    for table in tables.values():
        row = owner.execute(
            """SELECT c.relrowsecurity, c.relforcerowsecurity,
                      (SELECT count(*) FROM pg_policies p
                       WHERE p.schemaname = 'public' AND p.tablename = c.relname)
               FROM pg_class c WHERE c.oid = %s::regclass""",
            (table.name,),
        ).fetchone()
        assert row is not None
        enabled, forced, policies = row
        if not (enabled and forced and policies > 0):
            failures.append(f"{table.name}: rls={enabled} force={forced} policies={policies}")
    assert failures == []


def test_directory_tables_hold_only_routing_columns(tables: dict[str, Table]) -> None:
    directories = [table for table in tables.values() if table.is_directory]
    assert [table.name for table in directories] == ["tenant_directory"]
    for table in directories:
        assert {column.name for column in table.columns} <= DIRECTORY_COLUMNS, table.name


def test_app_role_owns_nothing_and_cannot_bypass_rls(owner: psycopg.Connection[Any]) -> None:
    role = get_settings().app_role
    row = owner.execute(
        """SELECT r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb,
                  (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid),
                  (SELECT count(*) FROM pg_namespace n WHERE n.nspowner = r.oid),
                  (SELECT count(*) FROM pg_proc p WHERE p.proowner = r.oid)
           FROM pg_roles r WHERE r.rolname = %s""",
        (role,),
    ).fetchone()
    assert row == (False, False, False, False, 0, 0, 0)
    memberships = owner.execute(
        "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
        "WHERE r.rolname = %s",
        (role,),
    ).fetchone()
    assert memberships == (0,), "the app role must not inherit another role's rights"


def test_views_run_with_the_callers_rights(owner: psycopg.Connection[Any]) -> None:
    unsafe = owner.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('v', 'm') AND n.nspname = 'public'
             AND NOT coalesce(c.reloptions @> ARRAY['security_invoker=true'], false)"""
    ).fetchall()
    assert unsafe == []


def test_no_security_definer_function_in_app_schemas(owner: psycopg.Connection[Any]) -> None:
    definers = owner.execute(
        """SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public' AND p.prosecdef"""
    ).fetchall()
    assert definers == []


def test_secondary_indexes_lead_with_the_tenant_key(
    owner: psycopg.Connection[Any], tables: dict[str, Table]
) -> None:
    failures = []
    for table in tables.values():
        for index_name, first_column in owner.execute(
            """SELECT i.relname, a.attname
               FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
               JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
               WHERE x.indrelid = %s::regclass AND NOT x.indisprimary""",
            (table.name,),
        ):
            if first_column != table.key_column and not (
                table.name == "tenants" and first_column == "slug"
            ):
                failures.append(f"{table.name}.{index_name} leads with {first_column}")
    assert failures == []


def test_each_tenant_sees_only_its_own_rows(
    app_dsn: str, tables: dict[str, Table], two_tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    failures = []
    for me, other in (two_tenants, two_tenants[::-1]):
        with as_tenant(app_dsn, me) as conn:
            for table in tables.values():
                own = _count(conn, table, f"{table.key_column} = %s", me)
                if table.is_directory:
                    continue  # readable by design; the write tests below cover it
                foreign = _count(conn, table, f"{table.key_column} = %s", other)
                everything = _count(conn, table)
                if own < 1 or foreign != 0 or everything != own:
                    failures.append(f"{table.name}: own={own} foreign={foreign} all={everything}")
    assert failures == []


def test_no_tenant_can_update_or_delete_another_tenants_rows(
    app_dsn: str, tables: dict[str, Table], two_tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    me, other = two_tenants
    failures = []
    for table in tables.values():
        key = sql.Identifier(table.key_column)
        name = sql.Identifier(table.name)
        with as_tenant(app_dsn, me) as conn:
            if _privilege(conn, table.name, "UPDATE"):
                touched = conn.execute(
                    sql.SQL("UPDATE {} SET {} = {} WHERE {} = %s").format(name, key, key, key),
                    (other,),
                ).rowcount
                if touched:
                    failures.append(f"{table.name}: updated {touched} foreign rows")
            if _privilege(conn, table.name, "DELETE"):
                removed = conn.execute(
                    sql.SQL("DELETE FROM {} WHERE {} = %s").format(name, key), (other,)
                ).rowcount
                if removed:
                    failures.append(f"{table.name}: deleted {removed} foreign rows")
        with as_tenant(app_dsn, other) as conn:
            if _count(conn, table, f"{table.key_column} = %s", other) < 1:
                failures.append(f"{table.name}: the other tenant lost rows")
    assert failures == []


def test_inserting_a_row_for_another_tenant_is_rejected(
    app_dsn: str, tables: dict[str, Table], two_tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    me, other = two_tenants
    accepted = []
    for table in tables.values():
        with as_tenant(app_dsn, me) as conn:
            try:
                if table.name == "tenants":
                    build_row(conn, tables, "tenants", uuid.uuid4())
                else:
                    build_row(conn, tables, table.name, other)
            except (errors.InsufficientPrivilege, errors.CheckViolation):
                continue
            accepted.append(table.name)
    assert accepted == []


def test_moving_an_own_row_to_another_tenant_is_rejected(
    app_dsn: str, tables: dict[str, Table], two_tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    me, other = two_tenants
    moved = []
    for table in tables.values():
        with as_tenant(app_dsn, me) as conn:
            if table.name == "tenants" or not _privilege(conn, table.name, "UPDATE"):
                continue
            key = sql.Identifier(table.key_column)
            try:
                conn.execute(
                    sql.SQL("UPDATE {} SET {} = %s WHERE {} = %s").format(
                        sql.Identifier(table.name), key, key
                    ),
                    (other, me),
                )
            except errors.InsufficientPrivilege:
                continue
            moved.append(table.name)
    assert moved == []


def test_without_a_tenant_no_rows_are_visible(
    app_dsn: str, tables: dict[str, Table], two_tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    leaks = []
    with psycopg.connect(app_dsn) as conn:
        # A pooled connection that served a tenant before: the setting is '' now, not NULL.
        conn.execute(SET_TENANT, (str(two_tenants[0]),))
        conn.commit()
        for table in tables.values():
            if not table.is_directory and _count(conn, table) != 0:
                leaks.append(table.name)
        conn.rollback()
    with as_tenant(app_dsn, None) as conn:
        for table in tables.values():
            if not table.is_directory and _count(conn, table) != 0:
                leaks.append(table.name)
    assert leaks == []


def test_directory_routes_are_readable_but_writable_only_for_oneself(
    app_dsn: str, two_tenants: tuple[uuid.UUID, uuid.UUID]
) -> None:
    me, other = two_tenants
    with as_tenant(app_dsn, None) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT tenant_id) FROM tenant_directory WHERE tenant_id = ANY(%s)",
            ([me, other],),
        ).fetchone()
        assert row == (2,)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO tenant_directory (kind, routing_key, tenant_id) VALUES (%s, %s, %s)",
                ("tenant_slug", f"stolen-{uuid.uuid4().hex}", other),
            )
    with as_tenant(app_dsn, me) as conn:
        assert (
            conn.execute("DELETE FROM tenant_directory WHERE tenant_id = %s", (other,)).rowcount
            == 0
        )
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("UPDATE tenant_directory SET tenant_id = %s", (me,))

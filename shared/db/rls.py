"""SQL that migrations use to put a table under tenant isolation. See docs/adr/0001.

The tenant comes from `app.tenant_id`, set per transaction by the unit of work. After a
transaction that set it ends, PostgreSQL leaves the placeholder as '' (not NULL) on that
pooled connection, so `NULLIF(..., '')` keeps "no tenant set" failing closed (no rows)
instead of raising on ''::uuid. The `(SELECT ...)` wrapper makes the planner evaluate the
setting once per statement (an InitPlan) rather than once per row.
"""

from __future__ import annotations

CURRENT_TENANT = "(SELECT NULLIF(current_setting('app.tenant_id', true), '')::uuid)"

TENANT_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def tenant_isolation(
    table: str,
    app_role: str,
    *,
    key_column: str = "tenant_id",
    privileges: str = TENANT_TABLE_PRIVILEGES,
) -> list[str]:
    """Statements that enable and force RLS on `table` and grant the app role `privileges`."""
    t, key, role = _quote(table), _quote(key_column), _quote(app_role)
    return [
        f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {t} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {t} USING ({key} = {CURRENT_TENANT}) "
        f"WITH CHECK ({key} = {CURRENT_TENANT})",
        f"REVOKE ALL ON {t} FROM PUBLIC",
        f"GRANT {privileges} ON {t} TO {role}",
    ]


def directory_isolation(table: str, app_role: str) -> list[str]:
    """A directory is readable without a tenant; a tenant adds or removes only its own routes."""
    t, role = _quote(table), _quote(app_role)
    return [
        f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {t} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY directory_read ON {t} FOR SELECT USING (true)",
        f"CREATE POLICY directory_insert_own ON {t} FOR INSERT "
        f"WITH CHECK (tenant_id = {CURRENT_TENANT})",
        f"CREATE POLICY directory_delete_own ON {t} FOR DELETE "
        f"USING (tenant_id = {CURRENT_TENANT})",
        f"REVOKE ALL ON {t} FROM PUBLIC",
        f"GRANT SELECT, INSERT, DELETE ON {t} TO {role}",
    ]

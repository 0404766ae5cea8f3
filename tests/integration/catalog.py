"""Reads tenant tables from the PostgreSQL catalog and builds valid rows for any of them.

The isolation suite must cover tables that later migrations add without anyone editing it,
so rows are made from what the catalog says: column types, NOT NULL without default,
`col IN (...)` checks, lowercase checks, and foreign keys (parents are made first, for the
same tenant).
"""

from __future__ import annotations

import itertools
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

DIRECTORY_COMMENT = "asep:directory"
SCHEMAS_WITH_APP_DATA = ("public",)

_counter = itertools.count(1)
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Column:
    name: str
    data_type: str
    nullable: bool
    has_default: bool
    max_length: int | None
    element_type: str | None = None  # for arrays: the element's udt name ("uuid", "int4")


@dataclass
class ForeignKey:
    columns: list[str]
    parent: str
    parent_columns: list[str]


@dataclass
class Table:
    name: str
    key_column: str  # tenant_id, or id for the tenants table itself
    is_directory: bool
    columns: list[Column] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    allowed_values: dict[str, list[str]] = field(default_factory=dict)
    lowercase_columns: set[str] = field(default_factory=set)
    # Numeric range checks (`confidence >= 0 AND confidence <= 1`): column -> (min, max).
    bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    primary_key: list[str] = field(default_factory=list)


def tenant_tables(conn: psycopg.Connection[Any]) -> dict[str, Table]:
    """Every table in the app schemas with a tenant_id column, plus `tenants` (keyed on id)."""
    rows = conn.execute(
        """
        SELECT c.relname, obj_description(c.oid, 'pg_class')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s)
          AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                       AND a.attname = 'tenant_id' AND NOT a.attisdropped)
               OR c.relname = 'tenants')
        ORDER BY c.relname
        """,
        (list(SCHEMAS_WITH_APP_DATA),),
    ).fetchall()
    tables = {
        name: Table(
            name=name,
            key_column="id" if name == "tenants" else "tenant_id",
            is_directory=(comment or "") == DIRECTORY_COMMENT,
        )
        for name, comment in rows
    }
    for table in tables.values():
        _describe(conn, table)
    return tables


def _describe(conn: psycopg.Connection[Any], table: Table) -> None:
    for name, data_type, nullable, default, max_length, udt in conn.execute(
        """
        SELECT column_name, data_type, is_nullable = 'YES',
               column_default IS NOT NULL OR is_identity = 'YES', character_maximum_length,
               udt_name
        FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s
        ORDER BY ordinal_position
        """,
        (table.name,),
    ):
        element = udt[1:] if data_type == "ARRAY" and udt.startswith("_") else None
        table.columns.append(Column(name, data_type, nullable, default, max_length, element))
    for kind, definition, columns, parent, parent_columns in conn.execute(
        """
        SELECT con.contype, pg_get_constraintdef(con.oid),
               ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
                     JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
                     ORDER BY k.i),
               con.confrelid::regclass::text,
               ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
                     JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
                     ORDER BY k.i)
        FROM pg_constraint con WHERE con.conrelid = %s::regclass
        """,
        (table.name,),
    ):
        if kind == "f":
            table.foreign_keys.append(ForeignKey(list(columns), parent, list(parent_columns)))
        elif kind == "p":
            table.primary_key = list(columns)
        elif kind == "c":
            _read_check(table, definition)


def _read_check(table: Table, definition: str) -> None:
    lowered = re.search(r"\((\w+)\)::text = lower\(", definition)
    if lowered:
        table.lowercase_columns.add(lowered.group(1))
    for column, operator, number in re.findall(
        r"\(?(\w+) ([<>]=?) \(?(-?\d+(?:\.\d+)?)\)?(?:::[\w ]+)?", definition
    ):
        low, high = table.bounds.get(column, (None, None))
        if operator.startswith(">"):
            low = float(number) if operator == ">=" else float(number) + 1
        else:
            high = float(number) if operator == "<=" else float(number) - 1
        table.bounds[column] = (low, high)
    in_list = re.search(r"\(?(\w+)\)?(?:::text)? = ANY \(\(?ARRAY\[(.*?)\]", definition)
    if in_list:
        table.allowed_values[in_list.group(1)] = re.findall(r"'([^']*)'", in_list.group(2))
        return
    # PostgreSQL prints a one-value `col IN ('x')` as `(col)::text = 'x'::text`.
    single = re.fullmatch(
        r"CHECK \(\(\(?(\w+)\)?(?:::text)? = '([^']*)'(?:::\w+(?: \w+)*)?\)\)", definition
    )
    if single:
        table.allowed_values[single.group(1)] = [single.group(2)]


def _value(table: Table, column: Column) -> Any:
    if column.name in table.allowed_values:
        return table.allowed_values[column.name][0]
    n = next(_counter)
    match column.data_type:
        case "uuid":
            return uuid.uuid4()
        case "text" | "character varying" | "character":
            value = f"v{n}-{uuid.uuid4().hex[:8]}"
            return value[: column.max_length] if column.max_length else value
        case "integer" | "bigint" | "smallint" | "numeric" | "double precision" | "real":
            low, high = table.bounds.get(column.name, (None, None))
            if high is not None:
                chosen = low if low is not None else high
            else:
                chosen = max(n, low) if low is not None else n
            return int(chosen) if column.data_type in {"integer", "bigint", "smallint"} else chosen
        case "boolean":
            return False
        case "jsonb" | "json":
            return Jsonb({})
        case "ARRAY" if column.element_type == "uuid":
            return [uuid.uuid4()]
        case "ARRAY" if column.element_type in {"int2", "int4", "int8", "numeric"}:
            return [n]
        case "ARRAY":
            return [f"v{n}"]
        case "bytea":
            return uuid.uuid4().bytes
        case "timestamp with time zone" | "timestamp without time zone" | "date":
            # Increasing, so a later column (ends_at) follows an earlier one (starts_at) and
            # checks such as `ends_at > starts_at` hold.
            return _EPOCH + timedelta(minutes=n)
        case _:
            raise NotImplementedError(
                f"catalog row builder: teach it {column.data_type} ({table.name}.{column.name})"
            )


def build_row(
    conn: psycopg.Connection[Any], tables: dict[str, Table], table_name: str, tenant_id: uuid.UUID
) -> dict[str, Any]:
    """Insert a row (and any parents) for `tenant_id` through `conn`; return the row inserted."""
    table = tables[table_name]
    if table.primary_key == [table.key_column]:
        # One row per tenant (a chain head, say): the tenant may already have it.
        existing = conn.execute(
            sql.SQL("SELECT * FROM {} WHERE {} = %s").format(
                sql.Identifier(table.name), sql.Identifier(table.key_column)
            ),
            (tenant_id,),
        )
        names = [description.name for description in existing.description or []]
        found = existing.fetchone()
        if found is not None:
            return dict(zip(names, found, strict=True))
    row: dict[str, Any] = {table.key_column: tenant_id}
    for foreign_key in table.foreign_keys:
        if foreign_key.parent == "tenants" or foreign_key.columns == ["tenant_id"]:
            continue
        parent_row = build_row(conn, tables, foreign_key.parent, tenant_id)
        pairs = zip(foreign_key.columns, foreign_key.parent_columns, strict=True)
        for child_column, parent_column in pairs:
            row[child_column] = parent_row[parent_column]
    for column in table.columns:
        if column.name in row or (column.has_default and column.name not in table.primary_key):
            continue
        if column.nullable and column.name not in table.primary_key:
            continue
        row[column.name] = _value(table, column)
    for column_name in table.lowercase_columns & row.keys():
        row[column_name] = str(row[column_name]).lower()
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING *").format(
        sql.Identifier(table.name),
        sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(sql.Placeholder() * len(row)),
    )
    cursor = conn.execute(statement, list(row.values()))
    names = [description.name for description in cursor.description or []]
    inserted = cursor.fetchone()
    assert inserted is not None
    return dict(zip(names, inserted, strict=True))

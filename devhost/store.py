"""PostgreSQL storage for devhost: instances, history, inboxes, work queues, Service Bus queues.

Everything lives in the `devhost` schema, created idempotently at start. Host liveness is a
session advisory lock held by each running devhost for its whole life: PostgreSQL releases it
the moment the process dies (even on kill -9), so leases held by a dead host are reclaimed at
once instead of after a visibility timeout.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

SCHEMA = "devhost"
# First key of the two-int advisory locks devhost takes; the second is per host.
ADVISORY_NAMESPACE = 0x0DE7_4057 & 0x7FFF_FFFF
_SCHEMA_LOCK_KEY = 1

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.hosts (
    host_id uuid PRIMARY KEY,
    lock_key integer NOT NULL,
    pid integer NOT NULL,
    hostname text NOT NULL,
    started_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.instances (
    instance_id text PRIMARY KEY,
    name text NOT NULL,
    execution_id text NOT NULL,
    runtime_status text NOT NULL,
    input text,
    output text,
    custom_status text,
    created_at timestamptz NOT NULL,
    last_updated_at timestamptz NOT NULL,
    completed_at timestamptz,
    parent_instance_id text,
    parent_execution_id text,
    parent_task_id integer,
    history_len integer NOT NULL DEFAULT 0,
    episodes integer NOT NULL DEFAULT 0,
    engine_state jsonb NOT NULL DEFAULT '{{}}'::jsonb
);
CREATE INDEX IF NOT EXISTS instances_created ON {SCHEMA}.instances (created_at);
CREATE INDEX IF NOT EXISTS instances_status ON {SCHEMA}.instances (runtime_status);
CREATE TABLE IF NOT EXISTS {SCHEMA}.history (
    instance_id text NOT NULL,
    idx integer NOT NULL,
    event jsonb NOT NULL,
    PRIMARY KEY (instance_id, idx)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.inbox (
    id bigserial PRIMARY KEY,
    instance_id text NOT NULL,
    execution_id text,
    event jsonb NOT NULL,
    visible_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_instance ON {SCHEMA}.inbox (instance_id, id);
CREATE INDEX IF NOT EXISTS inbox_visible ON {SCHEMA}.inbox (visible_at);
CREATE TABLE IF NOT EXISTS {SCHEMA}.activity_tasks (
    id bigserial PRIMARY KEY,
    instance_id text NOT NULL,
    execution_id text NOT NULL,
    task_id integer NOT NULL,
    name text NOT NULL,
    input text,
    created_at timestamptz NOT NULL,
    locked_by uuid,
    locked_until timestamptz,
    dequeue_count integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS activity_tasks_free ON {SCHEMA}.activity_tasks (locked_until, id);
CREATE TABLE IF NOT EXISTS {SCHEMA}.sb_messages (
    seq bigserial PRIMARY KEY,
    queue text NOT NULL,
    message_id text NOT NULL,
    body bytea NOT NULL,
    content_type text,
    correlation_id text,
    subject text,
    application_properties jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    enqueued_at timestamptz NOT NULL,
    visible_at timestamptz NOT NULL,
    delivery_count integer NOT NULL DEFAULT 0,
    locked_by uuid,
    locked_until timestamptz,
    lock_token uuid,
    dead_lettered_at timestamptz,
    dead_letter_reason text,
    dead_letter_description text
);
CREATE INDEX IF NOT EXISTS sb_messages_ready ON {SCHEMA}.sb_messages (queue, visible_at, seq)
    WHERE dead_lettered_at IS NULL;
CREATE TABLE IF NOT EXISTS {SCHEMA}.timer_schedules (
    function_name text PRIMARY KEY,
    last_fired_at timestamptz,
    next_due_at timestamptz
);
"""


def utcnow() -> datetime:
    return datetime.now(UTC)


def ensure_schema(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        # Concurrent CREATE ... IF NOT EXISTS can still collide on the catalog: serialize it.
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (ADVISORY_NAMESPACE, _SCHEMA_LOCK_KEY))
        conn.execute(_DDL)


class HostRegistration:
    """This process's identity in the database, alive exactly as long as its lock connection."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.host_id = uuid.uuid4()
        self.lock_key = random.randint(2, 2**31 - 1)  # noqa: S311 - an identifier, not a secret
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def register(self) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self.dsn, autocommit=True, application_name=f"devhost-{self.host_id}"
        )
        await conn.execute("SELECT pg_advisory_lock(%s, %s)", (ADVISORY_NAMESPACE, self.lock_key))
        await conn.execute(
            f"INSERT INTO {SCHEMA}.hosts (host_id, lock_key, pid, hostname, started_at)"
            " VALUES (%s, %s, %s, %s, %s)",
            (self.host_id, self.lock_key, os.getpid(), socket.gethostname(), utcnow()),
        )
        self._conn = conn

    async def close(self) -> None:
        if self._conn is not None:
            try:
                await self._conn.execute(
                    f"DELETE FROM {SCHEMA}.hosts WHERE host_id = %s", (self.host_id,)
                )
            finally:
                await self._conn.close()
            self._conn = None


async def live_host_ids(conn: psycopg.AsyncConnection[Any]) -> list[uuid.UUID]:
    rows = await (
        await conn.execute(
            f"""
            SELECT h.host_id FROM {SCHEMA}.hosts h
            WHERE EXISTS (
                SELECT 1 FROM pg_locks l
                WHERE l.locktype = 'advisory' AND l.granted
                  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND l.classid = %s::oid AND l.objid = h.lock_key::oid AND l.objsubid = 2
            )
            """,
            (ADVISORY_NAMESPACE,),
        )
    ).fetchall()
    return [row[0] for row in rows]


async def reclaim_dead_hosts(pool: AsyncConnectionPool[Any]) -> int:
    """Release every lease and lock held by a host whose advisory lock is gone."""
    async with pool.connection() as conn, conn.transaction():
        live = await live_host_ids(conn)
        dead = await (
            await conn.execute(
                f"DELETE FROM {SCHEMA}.hosts WHERE host_id <> ALL(%s) RETURNING host_id", (live,)
            )
        ).fetchall()
        released = await conn.execute(
            f"UPDATE {SCHEMA}.activity_tasks SET locked_by = NULL, locked_until = NULL"
            " WHERE locked_by IS NOT NULL AND locked_by <> ALL(%s)",
            (live,),
        )
        # For Service Bus, a dead receiver is a lock that expired: the message becomes visible
        # again and its delivery count (already incremented at receive) stands.
        sb = await conn.execute(
            f"UPDATE {SCHEMA}.sb_messages SET locked_by = NULL, locked_until = NULL, lock_token ="
            " NULL"
            " WHERE locked_by IS NOT NULL AND locked_by <> ALL(%s)",
            (live,),
        )
        count = (released.rowcount or 0) + (sb.rowcount or 0)
        if dead or count:
            log.info("reclaimed %d leases from %d dead host(s)", count, len(dead))
        return count


def open_pool(dsn: str, *, size: int, name: str) -> AsyncConnectionPool[Any]:
    return AsyncConnectionPool(
        dsn,
        min_size=2,
        max_size=size,
        # devhost's commits need not wait for the WAL flush: a killed devhost loses nothing
        # (the commit is in PostgreSQL's memory), only a crash of PostgreSQL itself could drop
        # the last few hundred milliseconds. That trade makes sequential chains ~1.3x faster.
        kwargs={
            "autocommit": True,
            "application_name": name,
            "options": "-c synchronous_commit=off",
        },
        open=False,
    )


def jsonb(value: Any) -> Jsonb:
    return Jsonb(value)


def plus_seconds(moment: datetime, seconds: float) -> datetime:
    return moment + timedelta(seconds=seconds)


__all__ = [
    "SCHEMA",
    "HostRegistration",
    "dict_row",
    "ensure_schema",
    "jsonb",
    "live_host_ids",
    "open_pool",
    "plus_seconds",
    "reclaim_dead_hosts",
    "utcnow",
]

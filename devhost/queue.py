"""Sending to devhost's Service Bus queues: what an app's queue port uses in local and test.

    from devhost.queue import QueueSender
    sender = QueueSender.from_environment()     # DEVHOST_DATABASE_URL, set inside devhost
    sender.send("inbound-mail", {"id": 1}, message_id="m-1")

The `azure` implementation of the same port uses azure-servicebus; this one writes the row a
Service Bus send would create, and wakes devhost's consumer when it runs in the same process.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from devhost.store import SCHEMA, ensure_schema, jsonb, utcnow

_wakeups: dict[str, list[Callable[[], None]]] = {}
_wakeups_lock = threading.Lock()


def register_wakeup(queue: str, callback: Callable[[], None]) -> None:
    with _wakeups_lock:
        _wakeups.setdefault(queue, []).append(callback)


def clear_wakeups() -> None:
    with _wakeups_lock:
        _wakeups.clear()


def wake(queue: str) -> None:
    with _wakeups_lock:
        callbacks = list(_wakeups.get(queue, ()))
    for callback in callbacks:
        callback()


def encode_body(value: Any) -> tuple[bytes, str | None]:
    if isinstance(value, bytes):
        return value, None
    if isinstance(value, str):
        return value.encode("utf-8"), "text/plain"
    return json.dumps(value).encode("utf-8"), "application/json"


def insert_statement(
    queue: str,
    body: bytes,
    *,
    message_id: str | None = None,
    content_type: str | None = None,
    correlation_id: str | None = None,
    subject: str | None = None,
    application_properties: dict[str, Any] | None = None,
    scheduled_enqueue_time: datetime | None = None,
) -> tuple[str, tuple[Any, ...]]:
    now = utcnow()
    return (
        f"""
        INSERT INTO {SCHEMA}.sb_messages
            (queue, message_id, body, content_type, correlation_id, subject,
             application_properties, enqueued_at, visible_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        (
            queue,
            message_id or uuid.uuid4().hex,
            body,
            content_type,
            correlation_id,
            subject,
            jsonb(application_properties or {}),
            now,
            scheduled_enqueue_time or now,
        ),
    )


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    body: bytes
    delivery_count: int
    reason: str | None
    description: str | None


class QueueSender:
    """A synchronous sender; safe to share between threads (one short connection per call)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._schema_ready = False

    @classmethod
    def from_environment(cls) -> QueueSender:
        dsn = os.environ.get("DEVHOST_DATABASE_URL")
        if not dsn:
            raise RuntimeError("DEVHOST_DATABASE_URL is not set: is this running under devhost?")
        return cls(dsn)

    def _ensure_schema(self) -> None:
        if not self._schema_ready:
            ensure_schema(self.dsn)
            self._schema_ready = True

    def send(
        self,
        queue: str,
        body: Any,
        *,
        message_id: str | None = None,
        content_type: str | None = None,
        correlation_id: str | None = None,
        subject: str | None = None,
        application_properties: dict[str, Any] | None = None,
        scheduled_enqueue_time: datetime | None = None,
    ) -> None:
        self._ensure_schema()
        encoded, default_type = encode_body(body)
        statement, params = insert_statement(
            queue,
            encoded,
            message_id=message_id,
            content_type=content_type or default_type,
            correlation_id=correlation_id,
            subject=subject,
            application_properties=application_properties,
            scheduled_enqueue_time=scheduled_enqueue_time,
        )
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(statement, params)
        wake(queue)

    def dead_letters(self, queue: str) -> list[DeadLetter]:
        self._ensure_schema()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            rows = conn.execute(
                f"""
                SELECT message_id, body, delivery_count, dead_letter_reason, dead_letter_description
                FROM {SCHEMA}.sb_messages
                WHERE queue = %s AND dead_lettered_at IS NOT NULL ORDER BY seq
                """,
                (queue,),
            ).fetchall()
        return [DeadLetter(r[0], bytes(r[1]), r[2], r[3], r[4]) for r in rows]

    def active_count(self, queue: str) -> int:
        self._ensure_schema()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(
                f"SELECT count(*) FROM {SCHEMA}.sb_messages WHERE queue = %s AND dead_lettered_at"
                " IS NULL",
                (queue,),
            ).fetchone()
        return int(row[0]) if row else 0

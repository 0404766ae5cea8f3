"""Service Bus queue emulation: a PostgreSQL queue with peek-lock, delivery count and dead-letter.

Semantics follow Service Bus: each receive takes a lock and increments DeliveryCount; the
functions host completes the message when the function succeeds (autoCompleteMessages) and
abandons it when it throws; a message abandoned (or whose lock lapsed) with DeliveryCount >=
MaxDeliveryCount moves to the dead-letter queue with reason MaxDeliveryCountExceeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from azure.functions.servicebus import ServiceBusMessage
from psycopg_pool import AsyncConnectionPool

from devhost import queue as queue_api
from devhost.app_loader import FunctionEntry
from devhost.invocations import InvocationLog
from devhost.store import SCHEMA, utcnow

log = logging.getLogger(__name__)

Invoke = Callable[[FunctionEntry, dict[str, Any]], Awaitable[Any]]

_COLUMNS = (
    "seq, message_id, body, content_type, correlation_id, subject, application_properties,"
    " enqueued_at, delivery_count, locked_until, lock_token"
)


class ServiceBusQueues:
    def __init__(self, pool: AsyncConnectionPool[Any], *, host_id: uuid.UUID) -> None:
        self.pool = pool
        self.host_id = host_id

    async def send_values(self, queue: str, values: Sequence[Any]) -> None:
        """Output-binding values: str/bytes bodies, anything else as JSON."""
        async with self.pool.connection() as conn, conn.transaction():
            for value in values:
                body, content_type = queue_api.encode_body(value)
                await conn.execute(
                    *queue_api.insert_statement(queue, body, content_type=content_type)
                )
        queue_api.wake(queue)

    async def dead_letter_expired(self, queue: str, max_delivery_count: int) -> int:
        """Messages whose lock lapsed on their last allowed delivery go to the dead-letter queue."""
        async with self.pool.connection() as conn:
            result = await conn.execute(
                f"""
                UPDATE {SCHEMA}.sb_messages SET dead_lettered_at = %s,
                    dead_letter_reason = 'MaxDeliveryCountExceeded',
                    dead_letter_description = 'Message could not be consumed after '
                        || delivery_count || ' delivery attempts.',
                    locked_by = NULL, locked_until = NULL, lock_token = NULL
                WHERE queue = %s AND dead_lettered_at IS NULL AND delivery_count >= %s
                  AND (locked_until IS NULL OR locked_until < %s)
                """,
                (utcnow(), queue, max_delivery_count, utcnow()),
            )
        return int(result.rowcount or 0)

    async def receive(self, queue: str, limit: int, lock_seconds: float) -> list[dict[str, Any]]:
        now = utcnow()
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    f"""
                    UPDATE {SCHEMA}.sb_messages m SET locked_by = %s, locked_until = %s,
                        lock_token = gen_random_uuid(), delivery_count = m.delivery_count + 1
                    WHERE m.seq IN (
                        SELECT seq FROM {SCHEMA}.sb_messages
                        WHERE queue = %s AND dead_lettered_at IS NULL AND visible_at <= %s
                          AND (locked_until IS NULL OR locked_until < %s)
                        ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED
                    )
                    RETURNING {_COLUMNS}
                    """,
                    (
                        self.host_id,
                        now + timedelta(seconds=lock_seconds),
                        queue,
                        now,
                        now,
                        limit,
                    ),
                )
            ).fetchall()
        keys = [c.strip() for c in _COLUMNS.split(",")]
        return [dict(zip(keys, row, strict=True)) for row in rows]

    async def complete(self, seq: int, lock_token: uuid.UUID) -> bool:
        async with self.pool.connection() as conn:
            result = await conn.execute(
                f"DELETE FROM {SCHEMA}.sb_messages WHERE seq = %s AND lock_token = %s",
                (seq, lock_token),
            )
        return bool(result.rowcount)

    async def abandon(
        self, seq: int, lock_token: uuid.UUID, max_delivery_count: int, error: str
    ) -> bool:
        """Release the lock; dead-letter when this was the last allowed delivery."""
        async with self.pool.connection() as conn:
            result = await conn.execute(
                f"""
                UPDATE {SCHEMA}.sb_messages
                SET locked_by = NULL, locked_until = NULL, lock_token = NULL,
                    dead_lettered_at = CASE WHEN delivery_count >= %s THEN %s END,
                    dead_letter_reason = CASE WHEN delivery_count >= %s
                        THEN 'MaxDeliveryCountExceeded' END,
                    dead_letter_description = CASE WHEN delivery_count >= %s THEN %s END
                WHERE seq = %s AND lock_token = %s
                RETURNING dead_lettered_at IS NOT NULL
                """,
                (
                    max_delivery_count,
                    utcnow(),
                    max_delivery_count,
                    max_delivery_count,
                    error[:4000],
                    seq,
                    lock_token,
                ),
            )
            row = await result.fetchone()
        return bool(row and row[0])

    async def renew(self, seqs: list[int], lock_seconds: float) -> None:
        if not seqs:
            return
        async with self.pool.connection() as conn:
            await conn.execute(
                f"UPDATE {SCHEMA}.sb_messages SET locked_until = %s WHERE seq = ANY(%s) AND"
                " locked_by = %s",
                (utcnow() + timedelta(seconds=lock_seconds), seqs, self.host_id),
            )

    async def describe(self, queue: str) -> dict[str, Any]:
        async with self.pool.connection() as conn:
            counts = await (
                await conn.execute(
                    f"""
                    SELECT count(*) FILTER (WHERE dead_lettered_at IS NULL),
                           count(*) FILTER (WHERE dead_lettered_at IS NOT NULL)
                    FROM {SCHEMA}.sb_messages WHERE queue = %s
                    """,
                    (queue,),
                )
            ).fetchone()
            dead = await (
                await conn.execute(
                    f"""
                    SELECT seq, message_id, delivery_count, dead_letter_reason,
                           dead_letter_description
                    FROM {SCHEMA}.sb_messages WHERE queue = %s AND dead_lettered_at IS NOT NULL
                    ORDER BY seq DESC LIMIT 100
                    """,
                    (queue,),
                )
            ).fetchall()
        active, dead_count = counts if counts else (0, 0)
        return {
            "queue": queue,
            "activeMessageCount": active,
            "deadLetterMessageCount": dead_count,
            "deadLetters": [
                {
                    "sequenceNumber": r[0],
                    "messageId": r[1],
                    "deliveryCount": r[2],
                    "deadLetterReason": r[3],
                    "deadLetterErrorDescription": r[4],
                }
                for r in dead
            ],
        }


def to_trigger_value(entry: FunctionEntry, row: dict[str, Any], lock_seconds: float) -> Any:
    """The trigger argument, by the parameter's annotation, as the worker's converter does."""
    body = bytes(row["body"])
    annotation = entry.annotation_of(entry.trigger.name)
    if annotation is str:
        return body.decode("utf-8")
    if annotation is bytes:
        return body
    if annotation is dict:
        return json.loads(body)
    properties = row["application_properties"] or {}
    enqueued: datetime = row["enqueued_at"]
    return ServiceBusMessage(
        body=body,
        application_properties=dict(properties),
        user_properties=dict(properties),
        content_type=row["content_type"],
        correlation_id=row["correlation_id"],
        delivery_count=row["delivery_count"],
        enqueued_time_utc=enqueued,
        expires_at_utc=None,
        label=row["subject"],
        subject=row["subject"],
        locked_until=row["locked_until"],
        lock_token=str(row["lock_token"]),
        message_id=row["message_id"],
        sequence_number=row["seq"],
        time_to_live=None,
        trigger_metadata={
            "DeliveryCount": row["delivery_count"],
            "MessageId": row["message_id"],
            "LockToken": str(row["lock_token"]),
            "SequenceNumber": row["seq"],
        },
    )


def _threadsafe_setter(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> Callable[[], None]:
    def wake() -> None:
        loop.call_soon_threadsafe(event.set)

    return wake


class ServiceBusDispatcher:
    def __init__(
        self,
        queues: ServiceBusQueues,
        functions: list[FunctionEntry],
        *,
        max_delivery_count: int,
        lock_seconds: float,
        concurrency: int,
        invoke: Invoke,
        invocations: InvocationLog,
        poll_seconds: float,
    ) -> None:
        self.queues = queues
        self.functions = functions
        self.max_delivery_count = max_delivery_count
        self.lock_seconds = lock_seconds
        self.concurrency = concurrency
        self.invoke = invoke
        self.invocations = invocations
        self.poll_seconds = poll_seconds
        self._wakes: dict[str, asyncio.Event] = {}
        self._held: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for entry in self.functions:
            queue = str(entry.trigger.properties.get("queueName"))
            event = self._wakes.setdefault(queue, asyncio.Event())
            queue_api.register_wakeup(queue, _threadsafe_setter(loop, event))
            self._tasks.append(
                asyncio.create_task(self._consume(entry, queue, event), name=f"devhost-sb-{queue}")
            )
        if self.functions:
            self._tasks.append(asyncio.create_task(self._renew_loop(), name="devhost-sb-renew"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        queue_api.clear_wakeups()

    def poke(self) -> None:
        for event in self._wakes.values():
            event.set()

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lock_seconds / 3)
            try:
                await self.queues.renew(list(self._held), self.lock_seconds)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("renewing Service Bus locks failed")

    async def _consume(self, entry: FunctionEntry, queue: str, wake: asyncio.Event) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        running: set[asyncio.Task[None]] = set()
        while True:
            received: list[dict[str, Any]] = []
            try:
                await self.queues.dead_letter_expired(queue, self.max_delivery_count)
                free = self.concurrency - len(running)
                if free > 0:
                    received = await self.queues.receive(queue, free, self.lock_seconds)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("receiving from queue %s failed", queue)
            for row in received:
                await slots.acquire()
                self._held.add(int(row["seq"]))
                task = asyncio.create_task(self._handle(entry, queue, row, slots))
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(lambda _t: wake.set())
            if received:
                continue
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=self.poll_seconds)

    async def _handle(
        self, entry: FunctionEntry, queue: str, row: dict[str, Any], slots: asyncio.Semaphore
    ) -> None:
        started = time.perf_counter()
        seq = int(row["seq"])
        try:
            try:
                value = to_trigger_value(entry, row, self.lock_seconds)
                await self.invoke(entry, {entry.trigger.name: value})
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                error_text: str | None = error
                dead = await self.queues.abandon(
                    seq, row["lock_token"], self.max_delivery_count, error
                )
                outcome = "DeadLettered" if dead else "Abandoned"
                log.warning(
                    "message %s on %s failed (delivery %d): %s%s",
                    row["message_id"],
                    queue,
                    row["delivery_count"],
                    error,
                    "; dead-lettered" if dead else "",
                )
            else:
                await self.queues.complete(seq, row["lock_token"])
                outcome, error_text = "Succeeded", None
            self.invocations.record(
                function=entry.name,
                trigger="serviceBusTrigger",
                instance_id=None,
                duration_ms=(time.perf_counter() - started) * 1000,
                outcome=outcome,
                error=error_text,
            )
        except Exception:
            log.exception(
                "settling message %s on %s failed; its lock will lapse", row["message_id"], queue
            )
        finally:
            self._held.discard(seq)
            slots.release()

"""Activity workers: leased work items, at-least-once, as in Azure.

A task is inserted already leased to this host by the episode that schedules it and handed to
the local workers in memory; leases are renewed while held. Tasks whose lease lapsed, or whose
host died (see store.reclaim_dead_hosts), are claimed again from the table. Completion deletes
the task and posts TaskCompleted/TaskFailed to the instance's inbox in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter
from psycopg_pool import AsyncConnectionPool

from devhost.app_loader import FunctionEntry, FunctionIndex, InvocationContext
from devhost.invocations import InvocationLog
from devhost.protocol import EventType
from devhost.store import SCHEMA, jsonb, utcnow

log = logging.getLogger(__name__)


def activity_failure(name: str, exc: BaseException) -> tuple[str, str]:
    """Reason and Details as the extension's TaskActivityShim reports a failed activity."""
    reason = f"Activity function '{name}' failed: {type(exc).__name__}: {exc}"
    details = "".join(traceback.format_exception(exc)).rstrip()
    return reason, details


class ActivityWorkerPool:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        index: FunctionIndex,
        *,
        host_id: uuid.UUID,
        concurrency: int,
        lease_seconds: float,
        client_binding: Callable[[], str],
        notify_instance: Callable[[str], None],
        invocations: InvocationLog,
        executor: ThreadPoolExecutor,
        poll_seconds: float = 1.0,
    ) -> None:
        self.pool = pool
        self.index = index
        self.host_id = host_id
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.client_binding = client_binding
        self.notify_instance = notify_instance
        self.invocations = invocations
        self.executor = executor
        self.poll_seconds = poll_seconds
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._held: set[int] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = {"completed": 0, "failed": 0, "lost_leases": 0}

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._claim_loop(), name="devhost-activity-claim"))
        self._tasks.append(asyncio.create_task(self._renew_loop(), name="devhost-activity-renew"))
        for n in range(self.concurrency):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"devhost-activity-{n}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def submit_leased(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._held.add(int(row["id"]))
            self._queue.put_nowait(row)

    def poke(self) -> None:
        self._wake.set()

    async def _claim_loop(self) -> None:
        while True:
            claimed = 0
            try:
                room = self.concurrency * 2 - self._queue.qsize()
                if room > 0:
                    claimed = await self._claim(room)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claiming activity tasks failed")
            if claimed:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)

    async def _claim(self, limit: int) -> int:
        now = utcnow()
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    f"""
                    UPDATE {SCHEMA}.activity_tasks t
                    SET locked_by = %s, locked_until = %s, dequeue_count = t.dequeue_count + 1
                    WHERE t.id IN (
                        SELECT id FROM {SCHEMA}.activity_tasks
                        WHERE locked_until IS NULL OR locked_until < %s
                        ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
                    )
                    RETURNING t.id, t.instance_id, t.execution_id, t.task_id, t.name, t.input,
                              t.dequeue_count
                    """,
                    (self.host_id, now + timedelta(seconds=self.lease_seconds), now, limit),
                )
            ).fetchall()
        keys = ("id", "instance_id", "execution_id", "task_id", "name", "input", "dequeue_count")
        self.submit_leased([dict(zip(keys, row, strict=True)) for row in rows])
        return len(rows)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            if not self._held:
                continue
            try:
                async with self.pool.connection() as conn:
                    await conn.execute(
                        f"UPDATE {SCHEMA}.activity_tasks SET locked_until = %s"
                        " WHERE id = ANY(%s) AND locked_by = %s",
                        (
                            utcnow() + timedelta(seconds=self.lease_seconds),
                            list(self._held),
                            self.host_id,
                        ),
                    )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("renewing activity leases failed")

    async def _worker(self) -> None:
        while True:
            row = await self._queue.get()
            try:
                await self._execute(row)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The lease will lapse and another claim runs it again: at-least-once.
                log.exception("activity task %s could not be completed", row.get("id"))
            finally:
                self._held.discard(int(row["id"]))
                self.poke()

    async def _execute(self, row: dict[str, Any]) -> None:
        name = str(row["name"])
        entry = self.index.activity(name)
        started = time.perf_counter()
        if entry is None:
            event: dict[str, Any] = {
                "EventType": int(EventType.TASK_FAILED),
                "TaskScheduledId": row["task_id"],
                "Reason": f"The function '{name}' doesn't exist, is disabled, or is not an"
                " activity function.",
                "Details": None,
            }
            outcome, error = "Failed", event["Reason"]
        else:
            try:
                result_text = await self.invoke(entry, row["input"], str(row["instance_id"]))
            except Exception as exc:
                reason, details = activity_failure(entry.name, exc)
                event = {
                    "EventType": int(EventType.TASK_FAILED),
                    "TaskScheduledId": row["task_id"],
                    "Reason": reason,
                    "Details": details,
                }
                outcome, error = "Failed", reason
            else:
                event = {
                    "EventType": int(EventType.TASK_COMPLETED),
                    "TaskScheduledId": row["task_id"],
                    "Result": result_text,
                }
                outcome, error = "Succeeded", None
        duration_ms = (time.perf_counter() - started) * 1000
        delivered = await self._complete(row, event)
        self.stats["completed" if outcome == "Succeeded" else "failed"] += 1
        if not delivered:
            self.stats["lost_leases"] += 1
        self.invocations.record(
            function=name,
            trigger="activityTrigger",
            instance_id=str(row["instance_id"]),
            duration_ms=duration_ms,
            outcome=outcome,
            error=error,
        )
        self.notify_instance(str(row["instance_id"]))

    async def _complete(self, row: dict[str, Any], event: dict[str, Any]) -> bool:
        async with self.pool.connection() as conn, conn.transaction():
            deleted = await (
                await conn.execute(
                    f"DELETE FROM {SCHEMA}.activity_tasks WHERE id = %s RETURNING id", (row["id"],)
                )
            ).fetchone()
            if deleted is None:
                # Someone else completed it (our lease lapsed and the task ran twice).
                return False
            await conn.execute(
                f"INSERT INTO {SCHEMA}.inbox (instance_id, execution_id, event, visible_at)"
                " VALUES (%s, %s, %s, %s)",
                (row["instance_id"], row["execution_id"], jsonb(event), utcnow()),
            )
        return True

    async def invoke(self, entry: FunctionEntry, input_text: str | None, instance_id: str) -> str:
        """Call the activity as the Python worker does; return its result as JSON text."""
        value = ActivityTriggerConverter.decode(
            meta.Datum(type="json", value=input_text if input_text is not None else "null"),
            trigger_metadata=None,
        )
        kwargs: dict[str, Any] = {entry.trigger.name: value}
        client_param = entry.client_param
        if client_param is not None:
            kwargs[client_param] = self.client_binding()
        if entry.wants_context:
            kwargs["context"] = InvocationContext(entry.name, entry.directory, str(uuid.uuid4()))
        if entry.is_async:
            result = await entry.user_function(**kwargs)
        else:
            loop = asyncio.get_running_loop()
            call = functools.partial(contextvars.copy_context().run, entry.user_function, **kwargs)
            result = await loop.run_in_executor(self.executor, call)
        encoded = ActivityTriggerConverter.encode(result, expected_type=None)
        return str(encoded.value)

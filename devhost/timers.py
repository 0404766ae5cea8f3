"""Timer triggers: NCRONTAB (6 fields, seconds first) or TimeSpan schedules, UTC.

Each occurrence is claimed with a compare-and-set on `timer_schedules`, so when several
devhosts share a database one of them fires it (the Functions host uses a singleton lock).
A schedule missed while no host ran fires once at start with `past_due` set (useMonitor).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.functions.timer import TimerRequest
from psycopg_pool import AsyncConnectionPool

from devhost.app_loader import FunctionEntry
from devhost.invocations import InvocationLog
from devhost.store import SCHEMA, utcnow

log = logging.getLogger(__name__)

Invoke = Callable[[FunctionEntry, dict[str, Any]], Awaitable[Any]]

_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
        start=1,
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}


class ScheduleError(ValueError):
    pass


def _parse_field(
    text: str, low: int, high: int, names: dict[str, int] | None = None
) -> frozenset[int]:
    values: set[int] = set()

    def number(token: str) -> int:
        key = token.lower()
        if names and key[:3] in names and not key.isdigit():
            return names[key[:3]]
        if not token.isdigit():
            raise ScheduleError(f"bad value {token!r} in NCRONTAB field {text!r}")
        return int(token)

    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"bad step in {text!r}")
            step = int(step_text)
        if part in ("*", ""):
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = number(a), number(b)
        else:
            start = number(part)
            end = high if step > 1 else start
        if start < low or end > high or start > end:
            raise ScheduleError(f"value out of range in NCRONTAB field {text!r} ({low}-{high})")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_restricted: bool
    weekday_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        fields = expression.split()
        if len(fields) != 6:
            raise ScheduleError(
                f"NCRONTAB expression {expression!r} needs 6 fields: "
                "{second} {minute} {hour} {day} {month} {day-of-week}"
            )
        sec, minute, hour, day, month, weekday = fields
        weekdays = _parse_field(weekday, 0, 7, _DAYS)
        if 7 in weekdays:
            weekdays = (weekdays - {7}) | {0}
        return cls(
            seconds=_parse_field(sec, 0, 59),
            minutes=_parse_field(minute, 0, 59),
            hours=_parse_field(hour, 0, 23),
            days=_parse_field(day, 1, 31),
            months=_parse_field(month, 1, 12, _MONTHS),
            weekdays=weekdays,
            day_restricted=day not in ("*", "?"),
            weekday_restricted=weekday not in ("*", "?"),
        )

    def _day_matches(self, moment: datetime) -> bool:
        cron_weekday = (moment.weekday() + 1) % 7
        day_ok = moment.day in self.days
        weekday_ok = cron_weekday in self.weekdays
        # Classic cron: when both day fields are restricted, either one matching is enough.
        if self.day_restricted and self.weekday_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok

    def next_after(self, after: datetime) -> datetime:
        moment = after.replace(microsecond=0) + timedelta(seconds=1)
        limit = after + timedelta(days=366 * 5)
        while moment <= limit:
            if moment.month not in self.months:
                year = moment.year + (1 if moment.month == 12 else 0)
                month = 1 if moment.month == 12 else moment.month + 1
                moment = moment.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)
                continue
            if not self._day_matches(moment):
                moment = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0)
                continue
            if moment.hour not in self.hours:
                moment = (moment + timedelta(hours=1)).replace(minute=0, second=0)
                continue
            if moment.minute not in self.minutes:
                moment = (moment + timedelta(minutes=1)).replace(second=0)
                continue
            if moment.second not in self.seconds:
                moment += timedelta(seconds=1)
                continue
            return moment
        raise ScheduleError("schedule never fires")


@dataclass(frozen=True)
class IntervalSchedule:
    interval: timedelta

    def next_after(self, after: datetime) -> datetime:
        return after + self.interval


Schedule = CronSchedule | IntervalSchedule


def parse_schedule(expression: str) -> Schedule:
    expression = re.sub(
        r"%([^%]+)%", lambda m: os.environ.get(m.group(1), m.group(0)), expression
    ).strip()
    if "%" in expression:
        raise ScheduleError(f"schedule {expression!r} names an app setting that is not set")
    span = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})", expression)
    if span:
        days, hours, minutes, seconds = (int(g) if g else 0 for g in span.groups())
        interval = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if interval <= timedelta(0):
            raise ScheduleError("TimeSpan schedule must be positive")
        return IntervalSchedule(interval)
    return CronSchedule.parse(expression)


class TimerScheduler:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        functions: list[FunctionEntry],
        *,
        invoke: Invoke,
        invocations: InvocationLog,
    ) -> None:
        self.pool = pool
        self.functions = functions
        self.invoke = invoke
        self.invocations = invocations
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for entry in self.functions:
            try:
                schedule = parse_schedule(str(entry.trigger.properties.get("schedule", "")))
            except ScheduleError as exc:
                log.error("timer function %s will not run: %s", entry.name, exc)
                continue
            self._tasks.append(
                asyncio.create_task(self._run(entry, schedule), name=f"devhost-timer-{entry.name}")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _claim(
        self, name: str, expected: datetime | None, next_due: datetime, fired: datetime
    ) -> bool:
        async with self.pool.connection() as conn:
            if expected is None:
                result = await conn.execute(
                    f"INSERT INTO {SCHEMA}.timer_schedules (function_name, last_fired_at,"
                    " next_due_at)"
                    " VALUES (%s, %s, %s) ON CONFLICT (function_name) DO NOTHING",
                    (name, fired, next_due),
                )
            else:
                result = await conn.execute(
                    f"UPDATE {SCHEMA}.timer_schedules SET last_fired_at = %s, next_due_at = %s"
                    " WHERE function_name = %s AND next_due_at = %s",
                    (fired, next_due, name, expected),
                )
        return bool(result.rowcount)

    async def _stored_due(self, name: str) -> tuple[datetime | None, datetime | None]:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    f"SELECT last_fired_at, next_due_at FROM {SCHEMA}.timer_schedules WHERE"
                    " function_name = %s",
                    (name,),
                )
            ).fetchone()
        return (row[0], row[1]) if row else (None, None)

    async def _run(self, entry: FunctionEntry, schedule: Schedule) -> None:
        run_on_startup = bool(entry.trigger.properties.get("runOnStartup"))
        last, due = await self._stored_due(entry.name)
        now = utcnow()
        if due is None:
            due = schedule.next_after(now)
            await self._claim(entry.name, None, due, now)
            last, due = await self._stored_due(entry.name)
            assert due is not None
        if run_on_startup:
            await self._fire(entry, past_due=False, last=last, due=due, schedule=schedule)
        while True:
            try:
                now = utcnow()
                if due > now:
                    await asyncio.sleep((due - now).total_seconds())
                    now = utcnow()
                past_due = (now - due) > timedelta(seconds=5)
                following = schedule.next_after(max(now, due))
                if await self._claim(entry.name, due, following, now):
                    await self._fire(
                        entry, past_due=past_due, last=last, due=following, schedule=schedule
                    )
                last, stored = await self._stored_due(entry.name)
                due = stored or following
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("timer %s failed to schedule; retrying", entry.name)
                await asyncio.sleep(1)

    async def _fire(
        self,
        entry: FunctionEntry,
        *,
        past_due: bool,
        last: datetime | None,
        due: datetime,
        schedule: Schedule,
    ) -> None:
        status = {
            "Last": (last or datetime.min.replace(tzinfo=UTC)).isoformat(),
            "Next": due.isoformat(),
            "LastUpdated": utcnow().isoformat(),
        }
        request = TimerRequest(
            past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True}
        )
        started = time.perf_counter()
        outcome, error = "Succeeded", None
        try:
            await self.invoke(entry, {entry.trigger.name: request})
        except Exception as exc:
            log.exception("timer function %s failed", entry.name)
            outcome, error = "Failed", f"{type(exc).__name__}: {exc}"
        self.invocations.record(
            function=entry.name,
            trigger="timerTrigger",
            instance_id=None,
            duration_ms=(time.perf_counter() - started) * 1000,
            outcome=outcome,
            error=error,
        )

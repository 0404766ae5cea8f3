"""SandboxCalendar: the embedded default calendar and the test peer.

The calendar belongs to a sandbox mailbox (as a Google or Microsoft 365 calendar belongs to
the mailbox's account). Like SandboxMailbox it acts as a remote provider: each call is its
own tenant transaction, never the caller's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from shared.calendar.invites import invitation, zone
from shared.calendar.orm import SandboxBusyBlock, SandboxCalendarEvent
from shared.calendar.port import (
    Attendee,
    BusyBlock,
    CalendarEvent,
    EventNotFound,
    EventRequest,
    InvalidEvent,
    merge_busy,
)
from shared.db.unit_of_work import TenantUnitOfWork, tenant_unit_of_work
from shared.mail.port import utc_now

Clock = Callable[[], datetime]


def _check_window(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidEvent("times must carry a time zone")
    if end <= start:
        raise InvalidEvent("the end must come after the start")


def _request_of(row: SandboxCalendarEvent) -> EventRequest:
    return EventRequest(
        uid=row.uid,
        organizer=row.organizer,
        attendees=tuple(
            Attendee(a["email"], a.get("name"), bool(a.get("required", True)))
            for a in row.attendees
        ),
        summary=row.summary,
        start=row.starts_at,
        end=row.ends_at,
        time_zone=row.time_zone,
        description=row.description,
        location=row.location,
    )


def _event_of(row: SandboxCalendarEvent) -> CalendarEvent:
    return CalendarEvent(
        uid=row.uid,
        provider_event_id=str(row.id),
        status=row.status,
        sequence=row.sequence,
        start=row.starts_at,
        end=row.ends_at,
        ics=row.ics,
    )


@dataclass
class SandboxCalendar:
    tenant_id: uuid.UUID
    mailbox_id: uuid.UUID
    clock: Clock = utc_now

    def free_busy(self, start: datetime, end: datetime) -> list[BusyBlock]:
        _check_window(start, end)
        with tenant_unit_of_work(self.tenant_id) as uow:
            blocks = uow.session.execute(
                select(SandboxBusyBlock.starts_at, SandboxBusyBlock.ends_at).where(
                    SandboxBusyBlock.tenant_id == self.tenant_id,
                    SandboxBusyBlock.mailbox_id == self.mailbox_id,
                    SandboxBusyBlock.starts_at < end,
                    SandboxBusyBlock.ends_at > start,
                )
            ).all()
            events = uow.session.execute(
                select(SandboxCalendarEvent.starts_at, SandboxCalendarEvent.ends_at).where(
                    SandboxCalendarEvent.tenant_id == self.tenant_id,
                    SandboxCalendarEvent.mailbox_id == self.mailbox_id,
                    SandboxCalendarEvent.status == "confirmed",
                    SandboxCalendarEvent.starts_at < end,
                    SandboxCalendarEvent.ends_at > start,
                )
            ).all()
        # Clipped to the window, as Google's freebusy.query answers.
        return merge_busy([BusyBlock(max(s, start), min(e, end)) for s, e in [*blocks, *events]])

    def create_event(self, event: EventRequest) -> CalendarEvent:
        _check_window(event.start, event.end)
        zone(event.time_zone)
        if not event.attendees:
            raise InvalidEvent("an invitation needs at least one attendee")
        ics = invitation(event, method="REQUEST", sequence=0, stamp=self.clock())
        with tenant_unit_of_work(self.tenant_id) as uow:
            uow.execute(
                insert(SandboxCalendarEvent)
                .values(
                    id=uuid.uuid4(),
                    tenant_id=self.tenant_id,
                    mailbox_id=self.mailbox_id,
                    uid=event.uid,
                    organizer=event.organizer,
                    attendees=[
                        {"email": a.email, "name": a.name, "required": a.required}
                        for a in event.attendees
                    ],
                    summary=event.summary,
                    description=event.description,
                    location=event.location,
                    starts_at=event.start,
                    ends_at=event.end,
                    time_zone=event.time_zone,
                    status="confirmed",
                    sequence=0,
                    ics=ics,
                )
                .on_conflict_do_nothing(index_elements=["tenant_id", "mailbox_id", "uid"])
            )
            return _event_of(self._row(uow, event.uid))

    def cancel_event(self, uid: str) -> CalendarEvent:
        with tenant_unit_of_work(self.tenant_id) as uow:
            row = self._row(uow, uid, lock=True)
            if row.status != "cancelled":
                row.status = "cancelled"
                row.sequence += 1
                row.ics = invitation(
                    _request_of(row), method="CANCEL", sequence=row.sequence, stamp=self.clock()
                )
                uow.flush()
            return _event_of(row)

    def _row(self, uow: TenantUnitOfWork, uid: str, *, lock: bool = False) -> SandboxCalendarEvent:
        query = uow.scoped(SandboxCalendarEvent).where(
            SandboxCalendarEvent.mailbox_id == self.mailbox_id, SandboxCalendarEvent.uid == uid
        )
        row = uow.session.scalars(query.with_for_update() if lock else query).one_or_none()
        if row is None:
            raise EventNotFound(f"no event {uid!r} on this calendar")
        return row


def add_busy_block(
    uow: TenantUnitOfWork,
    mailbox_id: uuid.UUID,
    start: datetime,
    end: datetime,
    summary: str | None = None,
) -> None:
    """Mark the calendar's owner busy (tests stand in for their other meetings)."""
    _check_window(start, end)
    uow.add(SandboxBusyBlock(mailbox_id=mailbox_id, starts_at=start, ends_at=end, summary=summary))
    uow.flush()


def events_between(
    uow: TenantUnitOfWork, mailbox_id: uuid.UUID, start: datetime, end: datetime
) -> list[CalendarEvent]:
    rows = uow.session.scalars(
        uow.scoped(SandboxCalendarEvent)
        .where(
            SandboxCalendarEvent.mailbox_id == mailbox_id,
            SandboxCalendarEvent.starts_at < end,
            SandboxCalendarEvent.ends_at > start,
        )
        .order_by(SandboxCalendarEvent.starts_at)
    )
    return [_event_of(row) for row in rows]

"""The Calendar port: free/busy, events with attendees, cancellation.

Shaped for the providers behind it:

- Google Calendar: `freebusy.query` over a window; `events.insert` with `sendUpdates=all`
  and a client-chosen `iCalUID`, so a retried insert finds the event instead of duplicating
  it; `events.delete` (or status cancelled) notifies attendees.
- Microsoft Graph: `calendar/getSchedule` for free/busy; `POST /events` with a
  `transactionId` (Graph's idempotency key for event creation) and attendees; `/cancel`.
- The sandbox (`shared/calendar/sandbox.py`): busy blocks and events in PostgreSQL, with
  the iCalendar invitation it would send.

The caller chooses the event's UID, like our own Message-ID for mail: creating the same UID
twice returns the first event (ARCHITECTURE.md §6: the side effect is keyed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class BusyBlock:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Attendee:
    email: str
    name: str | None = None
    required: bool = True


@dataclass(frozen=True)
class EventRequest:
    uid: str
    organizer: str
    attendees: tuple[Attendee, ...]
    summary: str
    start: datetime  # timezone-aware
    end: datetime
    time_zone: str  # IANA name the invite is written in (TZID)
    description: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class CalendarEvent:
    uid: str
    provider_event_id: str
    status: str  # "confirmed" | "cancelled"
    sequence: int
    start: datetime
    end: datetime
    # The iCalendar object attendees received last (METHOD:REQUEST, then METHOD:CANCEL).
    ics: bytes = field(repr=False)


class CalendarError(Exception):
    retryable: bool = False


class CalendarUnavailable(CalendarError):
    retryable = True


class InvalidEvent(CalendarError):
    pass


class EventNotFound(CalendarError):
    pass


class Calendar(Protocol):
    def free_busy(self, start: datetime, end: datetime) -> list[BusyBlock]:
        """Busy intervals overlapping [start, end), merged and sorted."""
        ...

    def create_event(self, event: EventRequest) -> CalendarEvent: ...

    def cancel_event(self, uid: str) -> CalendarEvent: ...


def merge_busy(blocks: list[BusyBlock]) -> list[BusyBlock]:
    merged: list[BusyBlock] = []
    for block in sorted(blocks, key=lambda b: (b.start, b.end)):
        if merged and block.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = BusyBlock(last.start, max(last.end, block.end))
        else:
            merged.append(block)
    return merged

"""SandboxCalendar: free/busy, idempotent events with an iCalendar invite, cancellation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar as ICalendar

from shared.calendar.factory import calendar_for
from shared.calendar.port import Attendee, BusyBlock, EventNotFound, EventRequest, InvalidEvent
from shared.calendar.sandbox import SandboxCalendar, add_busy_block
from shared.db.server import DatabaseUrls
from shared.db.unit_of_work import tenant_unit_of_work
from shared.mail.factory import MailboxRef, MailProviderNotAvailable
from tests.integration.mail.conftest import MailTenant, make_mail_tenant

BERLIN = ZoneInfo("Europe/Berlin")
DAY = datetime(2026, 3, 30, tzinfo=BERLIN)  # the day after the switch to summer time


@pytest.fixture
def owner(database: DatabaseUrls) -> MailTenant:
    return make_mail_tenant("cal")


def _event(uid: str, start: datetime, minutes: int = 30) -> EventRequest:
    return EventRequest(
        uid=uid,
        organizer="rep@sender.example",
        attendees=(Attendee("pat@buyer.example", "Pat Buyer"), Attendee("cto@buyer.example")),
        summary="Intro call",
        start=start,
        end=start + timedelta(minutes=minutes),
        time_zone="Europe/Berlin",
        description="15 minutes on the pilot",
    )


def _ics(raw: bytes) -> Any:
    return ICalendar.from_ical(raw)


def test_event_invite_is_a_request_with_uid_tzid_and_attendees(owner: MailTenant) -> None:
    calendar = SandboxCalendar(owner.id, owner.mailbox_id)
    start = DAY.replace(hour=10)
    uid = f"{uuid.uuid4()}@asep"
    created = calendar.create_event(_event(uid, start.astimezone(UTC)))
    assert created.status == "confirmed"
    assert created.sequence == 0
    ics = _ics(created.ics)
    assert ics["METHOD"] == "REQUEST"
    vevent: Any = next(iter(ics.walk("VEVENT")))
    assert str(vevent["UID"]) == uid
    assert vevent["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert vevent["DTSTART"].dt == start
    assert vevent["DTSTART"].dt.utcoffset() == timedelta(hours=2)
    assert vevent["DTEND"].dt == start + timedelta(minutes=30)
    attendees = sorted(str(a) for a in vevent.get("ATTENDEE", []))
    assert attendees == ["mailto:cto@buyer.example", "mailto:pat@buyer.example"]
    assert str(vevent["ORGANIZER"]) == "mailto:rep@sender.example"
    assert [c.name for c in ics.walk("VTIMEZONE")] == ["VTIMEZONE"]
    assert b"DTSTART;TZID=Europe/Berlin:20260330T100000" in created.ics


def test_creating_the_same_uid_twice_returns_the_first_event(owner: MailTenant) -> None:
    calendar = SandboxCalendar(owner.id, owner.mailbox_id)
    uid = f"{uuid.uuid4()}@asep"
    first = calendar.create_event(_event(uid, DAY.replace(hour=11)))
    second = calendar.create_event(_event(uid, DAY.replace(hour=15)))
    assert second.provider_event_id == first.provider_event_id
    assert second.start == first.start


def test_free_busy_merges_blocks_and_events_and_forgets_cancelled(owner: MailTenant) -> None:
    calendar = SandboxCalendar(owner.id, owner.mailbox_id)
    with tenant_unit_of_work(owner.id) as uow:
        add_busy_block(uow, owner.mailbox_id, DAY.replace(hour=9), DAY.replace(hour=10))
        add_busy_block(uow, owner.mailbox_id, DAY.replace(hour=17), DAY.replace(hour=19))
    uid = f"{uuid.uuid4()}@asep"
    calendar.create_event(_event(uid, DAY.replace(hour=9, minute=45), minutes=45))
    window = (DAY.replace(hour=8), DAY.replace(hour=18))
    assert calendar.free_busy(*window) == [
        BusyBlock(DAY.replace(hour=9), DAY.replace(hour=10, minute=30)),
        BusyBlock(DAY.replace(hour=17), DAY.replace(hour=18)),
    ]
    cancelled = calendar.cancel_event(uid)
    assert cancelled.status == "cancelled"
    assert cancelled.sequence == 1
    ics = _ics(cancelled.ics)
    assert ics["METHOD"] == "CANCEL"
    vevent: Any = next(iter(ics.walk("VEVENT")))
    assert str(vevent["UID"]) == uid
    assert vevent.decoded("SEQUENCE") == 1
    assert str(vevent["STATUS"]) == "CANCELLED"
    assert calendar.cancel_event(uid).sequence == 1
    assert calendar.free_busy(*window)[0] == BusyBlock(DAY.replace(hour=9), DAY.replace(hour=10))


def test_calendars_are_per_mailbox_and_per_tenant(owner: MailTenant) -> None:
    uid = f"{uuid.uuid4()}@asep"
    SandboxCalendar(owner.id, owner.mailbox_id).create_event(_event(uid, DAY.replace(hour=12)))
    other = make_mail_tenant("cal-other")
    window = (DAY, DAY + timedelta(days=1))
    assert SandboxCalendar(other.id, owner.mailbox_id).free_busy(*window) == []
    assert SandboxCalendar(owner.id, owner.add_mailbox()).free_busy(*window) == []
    with pytest.raises(EventNotFound):
        SandboxCalendar(other.id, owner.mailbox_id).cancel_event(uid)


@pytest.mark.parametrize(
    "request_",
    [
        _event("a", DAY.replace(hour=10), minutes=0),
        _event("b", DAY.replace(hour=10, tzinfo=None)),
        EventRequest("c", "o@x.example", (), "s", DAY, DAY + timedelta(hours=1), "Europe/Berlin"),
        EventRequest(
            "d",
            "o@x.example",
            (Attendee("p@x.example"),),
            "s",
            DAY,
            DAY + timedelta(hours=1),
            "Mars/Olympus",
        ),
    ],
)
def test_invalid_events_are_refused(owner: MailTenant, request_: EventRequest) -> None:
    with pytest.raises(InvalidEvent):
        SandboxCalendar(owner.id, owner.mailbox_id).create_event(request_)


def test_factory_picks_sandbox_and_refuses_providers_without_adapters(owner: MailTenant) -> None:
    ref = MailboxRef(owner.mailbox_id, owner.address, "sandbox")
    assert isinstance(calendar_for(owner.id, ref), SandboxCalendar)
    with pytest.raises(MailProviderNotAvailable):
        calendar_for(owner.id, MailboxRef(owner.mailbox_id, owner.address, "graph"))

"""iCalendar invitations (RFC 5545, iTIP RFC 5546) for events we organise."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar as ICalendar
from icalendar import Event, vCalAddress, vText

from shared.calendar.port import EventRequest, InvalidEvent

PRODID = "-//ShaunAI//ASEP//EN"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidEvent(f"unknown time zone {name!r}") from exc


def _address(email: str, name: str | None) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    if name:
        address.params["CN"] = vText(name)
    return address


def invitation(event: EventRequest, *, method: str, sequence: int, stamp: datetime) -> bytes:
    """METHOD:REQUEST to invite (or update), METHOD:CANCEL to cancel; SEQUENCE grows."""
    tz = zone(event.time_zone)
    calendar = ICalendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    vevent = Event()
    vevent.add("uid", event.uid)
    vevent.add("dtstamp", stamp)
    # Written in the organiser's zone with its TZID (and a VTIMEZONE), so clients show the
    # meeting at the intended local time across DST changes.
    vevent.add("dtstart", event.start.astimezone(tz))
    vevent.add("dtend", event.end.astimezone(tz))
    vevent.add("summary", event.summary)
    if event.description:
        vevent.add("description", event.description)
    if event.location:
        vevent.add("location", event.location)
    vevent.add("sequence", sequence)
    vevent.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    vevent.add("organizer", _address(event.organizer, None))
    for attendee in event.attendees:
        address = _address(attendee.email, attendee.name)
        address.params["ROLE"] = vText(
            "REQ-PARTICIPANT" if attendee.required else "OPT-PARTICIPANT"
        )
        address.params["PARTSTAT"] = vText("NEEDS-ACTION")
        address.params["RSVP"] = vText("TRUE")
        vevent.add("attendee", address, encode=False)
    calendar.add_component(vevent)
    calendar.add_missing_timezones()
    ics: bytes = calendar.to_ical()
    return ics

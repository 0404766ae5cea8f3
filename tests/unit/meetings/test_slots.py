"""Slot selection: working hours in the rep's zone, DST changes, busy blocks, lead time,
weekends, and a choice of days."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.calendar.port import BusyBlock
from shared.meetings.model import SlotRules, WorkingHours, describe, propose_slots

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _local(slot_start: datetime, zone: ZoneInfo) -> tuple[str, str]:
    local = slot_start.astimezone(zone)
    return local.strftime("%a"), local.strftime("%H:%M")


def test_three_slots_on_three_weekdays_inside_working_hours() -> None:
    # Monday 2026-03-02 08:00 UTC = 09:00 Berlin; the lead time pushes past 11:00 local.
    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    slots = propose_slots(now, [], WorkingHours("Europe/Berlin"), SlotRules())
    assert [_local(s.start, BERLIN) for s in slots] == [
        ("Mon", "11:00"),
        ("Tue", "09:00"),
        ("Wed", "09:00"),
    ]
    assert all(s.end - s.start == timedelta(minutes=30) for s in slots)
    assert all(s.start.tzinfo is not None for s in slots)


def test_weekends_are_skipped() -> None:
    # Friday 16:45 local: nothing left that day after the lead time; Sat/Sun are not working days.
    now = datetime(2026, 3, 6, 15, 45, tzinfo=UTC)
    slots = propose_slots(now, [], WorkingHours("Europe/Berlin"), SlotRules())
    assert [_local(s.start, BERLIN) for s in slots] == [
        ("Mon", "09:00"),
        ("Tue", "09:00"),
        ("Wed", "09:00"),
    ]


def test_busy_blocks_are_avoided_and_partial_overlaps_count() -> None:
    now = datetime(2026, 3, 6, 15, 45, tzinfo=UTC)  # Friday; next options start Monday 9:00
    monday = datetime(2026, 3, 9, tzinfo=BERLIN)
    busy = [
        # Monday is busy until 12:10: the 12:00 slot overlaps by ten minutes.
        BusyBlock(monday.replace(hour=9), monday.replace(hour=12, minute=10)),
        BusyBlock(monday.replace(day=10, hour=0), monday.replace(day=11, hour=0)),  # all Tuesday
    ]
    slots = propose_slots(now, busy, WorkingHours("Europe/Berlin"), SlotRules())
    assert [_local(s.start, BERLIN) for s in slots] == [
        ("Mon", "12:30"),
        ("Wed", "09:00"),
        ("Thu", "09:00"),
    ]


def test_lead_time_is_respected() -> None:
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # 11:00 Berlin
    slots = propose_slots(
        now, [], WorkingHours("Europe/Berlin"), SlotRules(lead_time=timedelta(hours=5))
    )
    assert slots[0].start >= now + timedelta(hours=5)
    assert _local(slots[0].start, BERLIN) == ("Mon", "16:00")


def test_working_hours_follow_the_wall_clock_across_a_dst_change() -> None:
    # US clocks go forward on Sunday 2026-03-08: 09:00 New York is 14:00 UTC on Friday and
    # 13:00 UTC on Monday.
    now = datetime(2026, 3, 5, 20, 0, tzinfo=UTC)  # Thursday 15:00 New York
    rules = SlotRules(lead_time=timedelta(hours=18))
    slots = propose_slots(now, [], WorkingHours("America/New_York"), rules)
    assert [(s.start.strftime("%a %H:%M"), _local(s.start, NEW_YORK)[1]) for s in slots] == [
        ("Fri 14:00", "09:00"),
        ("Mon 13:00", "09:00"),
        ("Tue 13:00", "09:00"),
    ]


def test_a_wall_time_skipped_by_the_dst_change_is_never_proposed() -> None:
    # Overnight hours across Europe's spring-forward night (2026-03-29, 02:00 -> 03:00).
    hours = WorkingHours("Europe/Berlin", start=time(1, 0), end=time(4, 0), days=frozenset({6}))
    now = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    slots = propose_slots(now, [], hours, SlotRules(count=10, horizon_days=1))
    assert [s.start.astimezone(BERLIN).strftime("%H:%M") for s in slots] == [
        "01:00",
        "01:30",
        "03:00",
        "03:30",
    ]
    # The 01:30 slot ends at 03:00 local: thirty real minutes later.
    assert all(s.end - s.start == timedelta(minutes=30) for s in slots)


def test_fills_from_the_same_days_when_few_days_are_free() -> None:
    now = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    hours = WorkingHours("UTC", days=frozenset({0}))  # Mondays only
    slots = propose_slots(now, [], hours, SlotRules(horizon_days=6))
    assert [s.start.strftime("%a %H:%M") for s in slots] == ["Mon 09:00", "Mon 09:30", "Mon 10:00"]


def test_no_free_time_means_no_slots() -> None:
    now = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
    busy = [BusyBlock(now, now + timedelta(days=30))]
    assert propose_slots(now, busy, WorkingHours("UTC"), SlotRules()) == []


def test_slots_are_described_in_the_prospects_zone() -> None:
    now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    (first, *_) = propose_slots(now, [], WorkingHours("Europe/Berlin"), SlotRules())
    assert describe(first, "America/New_York") == "Monday 2 March, 05:00 (America/New_York)"

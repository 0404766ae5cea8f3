"""Pure rules for meeting booking: which slots to propose, and which one a reply picks.

No I/O and no clock: the caller passes `now`, the rep's busy blocks and working hours.
Working hours are wall-clock times in the rep's zone, so a slot at 09:00 stays at 09:00
across a DST change; only its UTC instant moves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from shared.calendar.port import BusyBlock

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class WorkingHours:
    time_zone: str
    start: time = time(9, 0)
    end: time = time(17, 0)
    days: frozenset[int] = frozenset(range(5))  # date.weekday(): Monday is 0


@dataclass(frozen=True)
class SlotRules:
    duration: timedelta = timedelta(minutes=30)
    lead_time: timedelta = timedelta(hours=2)
    horizon_days: int = 14
    step: timedelta = timedelta(minutes=30)
    count: int = 3


@dataclass(frozen=True)
class Slot:
    start: datetime  # UTC
    end: datetime

    def local(self, zone: str) -> datetime:
        return self.start.astimezone(ZoneInfo(zone))


def _wall(day: date, moment: time, zone: ZoneInfo) -> datetime | None:
    """`moment` on `day` in `zone` as UTC, or None when that wall time does not exist (the
    hour skipped when clocks go forward)."""
    local = datetime.combine(day, moment, tzinfo=zone)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None
    return instant


def _overlaps(start: datetime, end: datetime, busy: list[BusyBlock]) -> bool:
    return any(block.start < end and start < block.end for block in busy)


def free_slots_by_day(
    now: datetime, busy: list[BusyBlock], hours: WorkingHours, rules: SlotRules
) -> list[list[Slot]]:
    """Every free slot inside working hours from `now + lead_time` to the horizon, grouped
    by the rep's local day, earliest first."""
    zone = ZoneInfo(hours.time_zone)
    earliest = now + rules.lead_time
    first_day = earliest.astimezone(zone).date()
    days: list[list[Slot]] = []
    for offset in range(rules.horizon_days + 1):
        day = first_day + timedelta(days=offset)
        if day.weekday() not in hours.days:
            continue
        slots: list[Slot] = []
        wall = datetime.combine(day, hours.start)
        last = datetime.combine(day, hours.end) - rules.duration
        while wall <= last:
            start = _wall(day, wall.time(), zone)
            if start is not None and start >= earliest:
                end = start + rules.duration
                if not _overlaps(start, end, busy):
                    slots.append(Slot(start, end))
            wall += rules.step
        if slots:
            days.append(slots)
    return days


def propose_slots(
    now: datetime, busy: list[BusyBlock], hours: WorkingHours, rules: SlotRules
) -> list[Slot]:
    """`rules.count` free slots, the earliest of different days first (a choice of days
    suits more people than three times on one afternoon), then more from the same days."""
    days = free_slots_by_day(now, busy, hours, rules)
    chosen = [slots[0] for slots in days[: rules.count]]
    for slots in days:
        for slot in slots[1:]:
            if len(chosen) >= rules.count:
                break
            chosen.append(slot)
    return sorted(chosen[: rules.count], key=lambda slot: slot.start)


# Reply text → slot. The text is the reply's new text (quoted history already removed), so
# the proposal's own "1. Tuesday …" lines are not in it.

_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3}
_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3}
_OPTION = re.compile(
    r"\b(?:option|slot|choice|number|no\.?|nr\.?)\s*#?\s*(\d|one|two|three)\b|#\s*(\d)\b"
)
_ORDINAL = re.compile(r"\b(first|1st|second|2nd|third|3rd)\s+(?:one|option|slot|time|choice)\b")
_THE_ORDINAL = re.compile(r"\bthe\s+(first|1st|second|2nd|third|3rd)\b")
_BARE = re.compile(r"^\s*\(?(\d)[.)]?\s*[.!]?\s*$")
_DECLINE = re.compile(r"\b(none of (?:these|those|them)|neither|no longer interested)\b")
_DAY_NAMES = {
    "monday": 0,
    "mon": 0,
    "tuesday": 1,
    "tue": 1,
    "tues": 1,
    "wednesday": 2,
    "wed": 2,
    "thursday": 3,
    "thu": 3,
    "thur": 3,
    "thurs": 3,
    "friday": 4,
    "fri": 4,
    "saturday": 5,
    "sat": 5,
    "sunday": 6,
    "sun": 6,
}
_DAY = re.compile(r"\b(" + "|".join(sorted(_DAY_NAMES, key=len, reverse=True)) + r")\b")
_CLOCK = re.compile(r"\b(\d{1,2})(?:[:.h](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?(?![\d/-])")


def _times(text: str) -> list[time]:
    found: list[time] = []
    for match in _CLOCK.finditer(text):
        hour, minute, meridiem = int(match.group(1)), match.group(2), match.group(3)
        if minute is None and meridiem is None:
            continue  # a bare number is a count or a date, not a time
        if meridiem:
            if not 1 <= hour <= 12:
                continue
            hour = hour % 12 + (12 if meridiem.startswith("p") else 0)
        if hour > 23 or (minute is not None and int(minute) > 59):
            continue
        found.append(time(hour, int(minute or 0)))
    return found


def parse_choice(text: str, slots: list[Slot], zone: str) -> int | None:
    """The 0-based index of the slot `text` picks, or None when it picks none or several.

    Understands an option number ("option 2", "#2", "2", "the second one") and the slot's
    day and time in the prospect's zone ("Tuesday 10:00", "tue at 10am", "2pm on Thursday").
    """
    lowered = text.lower()
    if _DECLINE.search(lowered):
        return None
    numbers: set[int] = set()
    for match in _OPTION.finditer(lowered):
        word = match.group(1) or match.group(2)
        numbers.add(_NUMBER_WORDS.get(word) or int(word))
    for pattern in (_ORDINAL, _THE_ORDINAL):
        numbers.update(_ORDINALS[m.group(1)] for m in pattern.finditer(lowered))
    bare = _BARE.match(lowered)
    if bare:
        numbers.add(int(bare.group(1)))
    valid = {n for n in numbers if 1 <= n <= len(slots)}
    if len(valid) == 1:
        return valid.pop() - 1
    if valid:
        return None
    days = {_DAY_NAMES[m.group(1)] for m in _DAY.finditer(lowered)}
    times = set(_times(lowered))
    if not days and not times:
        return None
    local = [slot.local(zone) for slot in slots]
    matches = [
        index
        for index, start in enumerate(local)
        if (not days or start.weekday() in days)
        and (not times or time(start.hour, start.minute) in times)
    ]
    return matches[0] if len(matches) == 1 else None


def describe(slot: Slot, zone: str) -> str:
    """ "Tuesday 1 December, 10:00 (Europe/Berlin)": the way the proposal lists a slot."""
    start = slot.local(zone)
    return f"{start:%A} {start.day} {start:%B}, {start:%H:%M} ({zone})"

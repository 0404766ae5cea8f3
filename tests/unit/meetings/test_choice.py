"""Which proposed slot a reply's text picks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.meetings.model import Slot, parse_choice

# Tuesday 10:00, Wednesday 14:30 and Thursday 09:00 in New York (EST, UTC-5).
SLOTS = [
    Slot(start, start + timedelta(minutes=30))
    for start in (
        datetime(2026, 3, 3, 15, 0, tzinfo=UTC),
        datetime(2026, 3, 4, 19, 30, tzinfo=UTC),
        datetime(2026, 3, 5, 14, 0, tzinfo=UTC),
    )
]
ZONE = "America/New_York"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Option 2 works for me", 1),
        ("option #3 please", 2),
        ("Let's do #1.", 0),
        ("2", 1),
        ("3.", 2),
        ("The second one is best.", 1),
        ("the first works", 0),
        ("Third option, thanks", 2),
        ("Tuesday 10:00 is fine", 0),
        ("tue at 10am works", 0),
        ("How about 2:30pm on Wednesday?", 1),
        ("Wednesday works", 1),
        ("Thursday 9:00", 2),
        ("14:30 suits me", 1),
        ("Number two, please", 1),
    ],
)
def test_picks(text: str, expected: int) -> None:
    assert parse_choice(text, SLOTS, ZONE) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Sounds great, thanks!",
        "None of these work for me, sorry.",
        "Option 2 or option 3, whichever you prefer",  # two picks
        "Option 5",  # not offered
        "Friday 10:00?",  # not offered
        "Tuesday 11:00",  # the day is offered, not at that time
        "We have 3 offices and 200 people",  # a number in a sentence is no pick
        "15:00",  # Tuesday's slot starts at 15:00 in UTC, not in the prospect's zone
    ],
)
def test_picks_nothing(text: str) -> None:
    assert parse_choice(text, SLOTS, ZONE) is None


def test_the_time_is_read_in_the_prospects_zone() -> None:
    assert parse_choice("15:00 on Tuesday", SLOTS, "UTC") == 0
    assert parse_choice("15:00 on Tuesday", SLOTS, ZONE) is None

"""A sequence that cannot run is refused before start, with every problem located."""

from __future__ import annotations

from typing import Any

import pytest

from shared.campaigns.model import render, sequence_problems
from shared.campaigns.schemas import SequenceCreate


def seq(*steps: dict[str, Any], variables: list[str] | None = None) -> SequenceCreate:
    return SequenceCreate.model_validate(
        {"name": "s", "steps": list(steps), "variables": variables or []}
    )


def email(
    step_id: str, next_step: str | None = None, body: str = "Hi {{first_name}}"
) -> dict[str, Any]:
    return {"id": step_id, "type": "email", "subject": "Hello", "body": body, "next": next_step}


def delay(step_id: str, next_step: str | None, seconds: int = 60) -> dict[str, Any]:
    return {"id": step_id, "type": "delay", "seconds": seconds, "next": next_step}


def branch(step_id: str, then: str | None, otherwise: str | None) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "branch",
        "condition": "replied",
        "then": then,
        "otherwise": otherwise,
    }


def messages(sequence: SequenceCreate) -> list[str]:
    return [f"{p.location}: {p.message}" for p in sequence_problems(sequence)]


def test_a_three_touch_sequence_with_a_reply_branch_is_sound() -> None:
    sound = seq(
        email("t1", "d1"),
        delay("d1", "b1"),
        branch("b1", None, "t2"),
        email("t2", "d2", body="Following up, {{first_name}} at {{company_name}}"),
        delay("d2", "t3"),
        email("t3", body="Last note about {{pain_point}}"),
        variables=["pain_point"],
    )
    assert messages(sound) == []


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        (seq(email("t1", "ghost")), "steps[0]: points to unknown step 'ghost'"),
        (seq(email("t1"), email("t2")), "steps[1]: step 't2' is unreachable from the first step"),
        (seq(email("t1", "d1"), delay("d1", "t1")), "steps[1]: loops back to step 't1'"),
        (seq(email("t1", body="Hi {{nickname}}")), "steps[0].body: unknown variable 'nickname'"),
        (seq(email("t1", body="Hi {{ first name }}")), "steps[0].body: malformed placeholder"),
        (seq(email("t1"), email("t1")), "steps[1].id: duplicate step id 't1'"),
        (seq(delay("d1", "t1"), email("t1")), "steps[0]: a sequence starts with an email step"),
    ],
)
def test_unsound_sequences_name_the_problem(sequence: SequenceCreate, expected: str) -> None:
    assert any(message.startswith(expected) for message in messages(sequence)), messages(sequence)


def test_rendering_reports_what_it_could_not_fill() -> None:
    text, missing = render("Hi {{first_name}}, re {{ pain_point }}", {"first_name": "Ana"})
    assert text == "Hi Ana, re {{ pain_point }}"
    assert missing == ["pain_point"]


def test_send_windows_open_in_the_campaigns_time_zone() -> None:
    from datetime import UTC, datetime, time

    from shared.campaigns.model import next_window_opening
    from shared.campaigns.schemas import SendWindow, Weekday

    window = SendWindow(
        start=time(9), end=time(17), days=[Weekday.MON, Weekday.TUE], time_zone="America/New_York"
    )
    monday_noon_ny = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)  # 12:00 in New York
    assert next_window_opening(monday_noon_ny, window) is None
    monday_evening_ny = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)  # 18:00 in New York
    assert next_window_opening(monday_evening_ny, window) == datetime(
        2026, 12, 1, 14, 0, tzinfo=UTC
    )
    tuesday_evening_ny = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    assert next_window_opening(tuesday_evening_ny, window) == datetime(
        2026, 12, 7, 14, 0, tzinfo=UTC
    )
    always = SendWindow(start=time(0), end=time(0), days=list(Weekday), time_zone="UTC")
    assert next_window_opening(monday_evening_ny, always) is None


def test_a_send_window_past_midnight_is_open_until_it_closes_the_next_day() -> None:
    from datetime import UTC, datetime, time

    from shared.campaigns.model import next_window_opening
    from shared.campaigns.schemas import SendWindow, Weekday

    night = SendWindow(start=time(22), end=time(2), days=[Weekday.MON], time_zone="UTC")
    tuesday_one_am = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # Monday's window, still open
    assert next_window_opening(tuesday_one_am, night) is None
    tuesday_three_am = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    assert next_window_opening(tuesday_three_am, night) == datetime(2026, 12, 7, 22, 0, tzinfo=UTC)
    monday_eleven_pm = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert next_window_opening(monday_eleven_pm, night) is None

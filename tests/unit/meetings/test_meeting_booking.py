"""meeting_booking driven with canned activity results: the order of its steps, waits on
caps, a slot taken meanwhile, a choice of an earlier proposal, the timeout and a decline."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrators.meetings import run_meeting_booking
from shared.meetings.schemas import MeetingBookingInput

TENANT = uuid.uuid4()
INBOUND = uuid.uuid4()
MEETING = uuid.uuid4()
INTENT = uuid.uuid4()
SENT = {"next_action": "none", "status": "sent"}


@dataclass
class Task:
    name: str
    payload: Any = None
    result: Any = None
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeContext:
    """Answers activities from `results` (a list is consumed in order) and decides every
    task_any with `events`: each entry is an event payload, or None for the timer."""

    results: dict[str, Any]
    events: list[dict[str, Any] | None] = field(default_factory=list)
    current_utc_datetime: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    timers: list[datetime] = field(default_factory=list)

    def get_input(self) -> dict[str, Any]:
        return MeetingBookingInput(
            tenant_id=TENANT, inbound_id=INBOUND, choice_timeout_seconds=600, max_proposals=2
        ).model_dump(mode="json")

    def call_activity_with_retry(self, name: str, retry: Any, payload: Any) -> Task:
        self.calls.append((name, payload))
        answer = self.results[name]
        if isinstance(answer, list):
            answer = answer.pop(0)
        return Task(name, payload, answer(payload) if callable(answer) else answer)

    def wait_for_external_event(self, name: str) -> Task:
        return Task("event:" + name)

    def create_timer(self, at: datetime) -> Task:
        self.timers.append(at)
        return Task("timer")

    def task_any(self, tasks: list[Task]) -> Task:
        payload = self.events.pop(0)
        if payload is None:
            return next(t for t in tasks if t.name == "timer")
        event = next(t for t in tasks if t.name.startswith("event:"))
        event.result = payload
        return event


def drive(context: FakeContext) -> Any:
    generator = run_meeting_booking(context)
    sent: Any = None
    try:
        while True:
            task = generator.send(sent)
            sent = task if task.name.startswith(("event:", "timer")) else task.result
    except StopIteration as stop:
        return stop.value


def _results(**overrides: Any) -> dict[str, Any]:
    results: dict[str, Any] = {
        "open_meeting": {"meeting_id": str(MEETING), "status": "proposing"},
        "propose_meeting": {"outcome": "done", "intent_id": str(INTENT)},
        "deliver_touch": SENT,
        "book_meeting": {"outcome": "done", "calendar_event_uid": "uid-1"},
        "finish_meeting": {"deal_id": "deal-1"},
        "expire_meeting": {},
        "end_meeting": {},
    }
    results.update(overrides)
    return results


def names(context: FakeContext) -> list[str]:
    return [name for name, _ in context.calls]


def test_proposes_waits_for_the_choice_and_books() -> None:
    context = FakeContext(_results(), events=[{"index": 1, "source": "link", "round": 1}])
    result = drive(context)
    assert result == {
        "meeting_id": str(MEETING),
        "status": "booked",
        "calendar_event_uid": "uid-1",
        "deal_id": "deal-1",
        "choice_source": "link",
    }
    assert names(context) == [
        "open_meeting",
        "propose_meeting",
        "deliver_touch",
        "book_meeting",
        "finish_meeting",
    ]
    assert context.calls[3][1]["index"] == 1
    assert context.calls[3][1]["round"] == 1


def test_a_taken_slot_means_a_new_proposal_and_stale_choices_are_ignored() -> None:
    def taken(payload: dict[str, Any]) -> dict[str, Any]:
        outcome = "taken" if payload["round"] == 1 else "done"
        return {"outcome": outcome, "calendar_event_uid": "uid-2"}

    context = FakeContext(
        _results(book_meeting=taken),
        events=[
            {"index": 0, "round": 1, "source": "reply"},
            {"index": 0, "round": 1, "source": "link"},  # a late pick of the first proposal
            {"index": 2, "round": 2, "source": "reply"},
        ],
    )
    assert drive(context)["status"] == "booked"
    assert names(context) == [
        "open_meeting",
        "propose_meeting",
        "deliver_touch",
        "book_meeting",
        "propose_meeting",
        "deliver_touch",
        "book_meeting",
        "finish_meeting",
    ]
    assert [p["round"] for n, p in context.calls if n == "propose_meeting"] == [1, 2]
    assert context.calls[-2][1] | {"tenant_id": None} == {
        "tenant_id": None,
        "meeting_id": str(MEETING),
        "round": 2,
        "index": 2,
    }


def test_proposals_are_bounded() -> None:
    context = FakeContext(
        _results(book_meeting={"outcome": "taken"}),
        events=[{"index": 0, "round": 1}, {"index": 0, "round": 2}],
    )
    result = drive(context)
    assert result["status"] == "held"
    assert names(context).count("propose_meeting") == 2
    assert context.calls[-1][0] == "end_meeting"
    assert context.calls[-1][1]["status"] == "held"


def test_the_timeout_expires_unless_a_choice_was_recorded() -> None:
    context = FakeContext(_results(expire_meeting={}), events=[None])
    assert drive(context)["status"] == "expired"
    assert names(context)[-1] == "expire_meeting"
    assert context.timers == [datetime(2026, 1, 1, 0, 10, tzinfo=UTC)]

    recorded = FakeContext(
        _results(expire_meeting={"index": 1, "round": 1, "source": "link"}), events=[None]
    )
    assert drive(recorded)["status"] == "booked"
    assert names(recorded)[-3:] == ["expire_meeting", "book_meeting", "finish_meeting"]


def test_a_decline_ends_the_meeting() -> None:
    context = FakeContext(_results(), events=[{"declined": "objection", "round": 1}])
    assert drive(context) == {
        "meeting_id": str(MEETING),
        "status": "declined",
        "reason": "objection",
    }
    assert context.calls[-1][1]["status"] == "declined"


def test_waits_on_a_cap_then_sends() -> None:
    wait = {"outcome": "wait", "wait_until": "2026-01-01T05:00:00Z"}
    context = FakeContext(
        _results(propose_meeting=[wait, {"outcome": "done", "intent_id": str(INTENT)}]),
        events=[{"declined": "no", "round": 1}],
    )
    drive(context)
    assert context.timers[0] == datetime(2026, 1, 1, 5, 0, tzinfo=UTC)
    assert names(context)[:3] == ["open_meeting", "propose_meeting", "propose_meeting"]


def test_held_by_policy_or_an_unsent_proposal() -> None:
    held = FakeContext(_results(propose_meeting={"outcome": "held", "reasons": ["suppressed"]}))
    assert drive(held)["status"] == "held"
    assert names(held) == ["open_meeting", "propose_meeting"]

    unsent = FakeContext(
        _results(deliver_touch={"next_action": "none", "status": "held", "reason": "rejected"})
    )
    result = drive(unsent)
    assert result["reasons"] == ["the proposal was not sent: rejected"]
    assert names(unsent)[-1] == "end_meeting"


def test_nothing_to_do_for_a_skipped_or_finished_meeting() -> None:
    skipped = FakeContext(_results(open_meeting={"reason": "already booked"}))
    assert drive(skipped) == {"status": "skipped", "reason": "already booked"}
    done = FakeContext(_results(open_meeting={"meeting_id": str(MEETING), "status": "booked"}))
    assert drive(done)["status"] == "booked"
    assert names(done) == ["open_meeting"]

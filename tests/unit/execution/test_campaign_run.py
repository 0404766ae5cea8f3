"""campaign_run driven with canned enrol_batch results: the wait before the next batch."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrators.campaign import run_campaign_run
from shared.execution.schemas import CampaignRunInput, EnrolResult

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Task:
    name: str
    result: Any = None


@dataclass
class FakeContext:
    enrolled: EnrolResult
    run: CampaignRunInput = field(
        default_factory=lambda: CampaignRunInput(
            tenant_id=uuid.uuid4(),
            campaign_id=uuid.uuid4(),
            sequence_id=uuid.uuid4(),
            canary_done=True,
            pace_seconds=1,
        )
    )
    current_utc_datetime: datetime = START
    timers: list[datetime] = field(default_factory=list)
    continued_with: dict[str, Any] | None = None

    def get_input(self) -> dict[str, Any]:
        return self.run.model_dump(mode="json")

    def call_activity_with_retry(self, name: str, retry: Any, payload: Any) -> Task:
        assert name == "enrol_batch"
        return Task(name, self.enrolled.model_dump(mode="json"))

    def create_timer(self, at: datetime) -> Task:
        self.timers.append(at)
        return Task("timer")

    def continue_as_new(self, payload: dict[str, Any]) -> None:
        self.continued_with = payload


def drive(context: FakeContext) -> Any:
    generator = run_campaign_run(context)
    sent: Any = None
    try:
        while True:
            task = generator.send(sent)
            sent = task.result
    except StopIteration as stop:
        return stop.value


def test_a_batch_is_followed_by_the_pace_and_the_next_batch() -> None:
    context = FakeContext(EnrolResult(enrolled=50, last_position=50, done=False))
    assert drive(context) is None
    assert context.timers == [START + timedelta(seconds=1)]
    assert context.continued_with is not None
    assert context.continued_with["after_position"] == 50
    assert context.continued_with["enrolled"] == 50


def test_a_paused_campaign_asks_again_after_the_pause_poll() -> None:
    context = FakeContext(EnrolResult(enrolled=0, last_position=0, done=False, wait_seconds=60))
    drive(context)
    assert context.timers == [START + timedelta(seconds=60)]
    assert context.continued_with is not None
    assert context.continued_with["after_position"] == 0


def test_the_last_batch_ends_the_run() -> None:
    context = FakeContext(EnrolResult(enrolled=3, last_position=3, done=True))
    assert drive(context) == {"status": "enrolled", "enrolled": 3}
    assert context.timers == []
    assert context.continued_with is None

"""reply_to_deal driven with canned activity results: which activities run, in which order,
for each gate outcome and approval decision."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrators.deals import run_reply_to_deal
from shared.deals.model import gate_outcome
from shared.deals.schemas import DealGateResult, GateOutcome, ReplyToDealInput
from shared.policy.schemas import Decision, Effect, Reason

TENANT = uuid.uuid4()
INBOUND = uuid.uuid4()
REPLY = uuid.uuid4()
DEAL = uuid.uuid4()


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
    """Records what the orchestrator asks for; `winner` picks which task_any task wins."""

    winner: str = "approval"
    approval: Any = None
    instance_id: str = f"deal:{INBOUND}"
    current_utc_datetime: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    calls: list[str] = field(default_factory=list)
    payloads: dict[str, Any] = field(default_factory=dict)

    def get_input(self) -> dict[str, Any]:
        return ReplyToDealInput(
            tenant_id=TENANT, inbound_id=INBOUND, approval_timeout_seconds=60
        ).model_dump(mode="json")

    def call_activity_with_retry(self, name: str, retry: Any, payload: Any) -> Task:
        self.calls.append(name)
        self.payloads[name] = payload
        return Task(name, payload)

    def wait_for_external_event(self, name: str) -> Task:
        return Task("event:" + name, result=self.approval)

    def create_timer(self, at: datetime) -> Task:
        return Task("timer")

    def task_any(self, tasks: list[Task]) -> Task:
        wanted = "timer" if self.winner == "timer" else "event:approval"
        return next(t for t in tasks if t.name == wanted)


def _gate(outcome: GateOutcome) -> dict[str, Any]:
    return DealGateResult(
        reply_id=REPLY, outcome=outcome, label="positive", confidence=0.7, touch_number=1
    ).model_dump(mode="json")


def drive(
    context: FakeContext,
    label: str = "positive",
    outcome: GateOutcome = GateOutcome.AUTO,
    routed: dict[str, Any] | None = None,
) -> Any:
    results = {
        "classify_reply": {"reply_id": str(REPLY), "label": label, "positive": label == "positive"},
        "route_meeting_reply": routed or {"routed": False},
        "start_meeting_booking": f"meeting:{INBOUND}",
        "gate_deal": _gate(outcome),
        "request_deal_approval": str(uuid.uuid4()),
        "write_deal": {"id": str(DEAL), "status": "created"},
        "hold_deal": {"id": str(DEAL), "status": "held"},
    }
    generator = run_reply_to_deal(context)
    sent: Any = None
    try:
        while True:
            task = generator.send(sent)
            sent = results.get(task.name) if isinstance(task, Task) else None
            if isinstance(task, Task) and task.name.startswith(("event:", "timer")):
                sent = task
    except StopIteration as stop:
        return stop.value


def test_a_non_positive_reply_ends_after_classifying() -> None:
    context = FakeContext()
    assert drive(context, label="unsubscribe") == {"status": "no_deal", "label": "unsubscribe"}
    assert context.calls == ["classify_reply", "route_meeting_reply"]


def test_an_answer_to_an_open_meeting_proposal_goes_to_the_meeting() -> None:
    context = FakeContext()
    meeting = str(uuid.uuid4())
    routed = {"routed": True, "meeting_id": meeting, "choice": {"index": 1, "round": 1}}
    assert drive(context, routed=routed) == {
        "status": "meeting_reply",
        "label": "positive",
        "meeting_id": meeting,
    }
    assert context.calls == ["classify_reply", "route_meeting_reply"]
    assert context.payloads["route_meeting_reply"]["label"] == "positive"


def test_high_confidence_creates_the_deal_without_asking() -> None:
    context = FakeContext()
    result = drive(context, outcome=GateOutcome.AUTO)
    assert result["status"] == "created"
    assert result["meeting_instance_id"] == f"meeting:{INBOUND}"
    assert context.calls == [
        "classify_reply",
        "route_meeting_reply",
        "gate_deal",
        "write_deal",
        "start_meeting_booking",
    ]
    assert context.payloads["write_deal"]["approval_id"] is None
    assert context.payloads["start_meeting_booking"]["inbound_id"] == str(INBOUND)


def test_a_blocked_reply_writes_nothing() -> None:
    context = FakeContext()
    assert drive(context, outcome=GateOutcome.NONE)["status"] == "blocked"
    assert context.calls == ["classify_reply", "route_meeting_reply", "gate_deal"]


@pytest.mark.parametrize(
    ("winner", "approval", "calls", "status"),
    [
        ("approval", '{"status": "approved"}', ["write_deal", "start_meeting_booking"], "created"),
        ("approval", {"status": "rejected"}, ["hold_deal"], "held"),
        ("timer", None, ["hold_deal"], "held"),
    ],
)
def test_medium_confidence_waits_for_the_approval_or_the_timeout(
    winner: str, approval: Any, calls: list[str], status: str
) -> None:
    context = FakeContext(winner=winner, approval=approval)
    result = drive(context, outcome=GateOutcome.APPROVAL)
    assert result["status"] == status
    assert context.calls == [
        "classify_reply",
        "route_meeting_reply",
        "gate_deal",
        "request_deal_approval",
        *calls,
    ]
    ask = context.payloads["request_deal_approval"]
    assert ask["orchestration_instance_id"] == f"deal:{INBOUND}"
    if status == "held":
        reason = context.payloads["hold_deal"]["reason"]
        assert reason == (
            "the deal approval timed out" if winner == "timer" else "the deal was rejected"
        )


def _decision(*effects: tuple[str, Effect], allowed: bool = True) -> Decision:
    reasons = [Reason(rule_id=rule, effect=effect, text=rule) for rule, effect in effects]
    matched = {effect for _, effect in effects}
    possible = (
        allowed
        and Effect.DENY_DEAL not in matched
        and bool(matched & {Effect.ALLOW_DEAL, Effect.DEAL_REQUIRES_APPROVAL})
    )
    return Decision(
        allowed=allowed,
        reasons=reasons,
        deal_create_allowed=possible,
        deal_create_requires_approval=possible and Effect.DEAL_REQUIRES_APPROVAL in matched,
    )


def test_gate_outcome_updates_only_when_the_window_alone_stands_in_the_way() -> None:
    auto = ("deal-positive-reply-auto", Effect.ALLOW_DEAL)
    dedupe = ("deal-dedupe-window", Effect.DENY_DEAL)
    negative = ("deal-never-on-negative-signals", Effect.DENY_DEAL)
    assert gate_outcome(_decision(auto), False) is GateOutcome.AUTO
    assert gate_outcome(_decision(auto, dedupe), True) is GateOutcome.UPDATE
    assert gate_outcome(_decision(auto, dedupe, negative), True) is GateOutcome.NONE
    assert gate_outcome(_decision(dedupe), True) is GateOutcome.NONE
    assert gate_outcome(_decision(auto, dedupe, allowed=False), True) is GateOutcome.NONE

"""meeting_booking (ARCHITECTURE.md §4): free/busy → propose slots → wait for the choice →
create the event with its invitation → log the meeting and advance (or create) the deal.

Started by reply_to_deal once a positive reply's deal is written, one instance per reply
(`meeting:{inbound_id}`). The proposal is a message like any touch: gated by policy,
recorded as a send intent, delivered and reconciled by the mail activities. The choice
arrives as the `slot_chosen` event, raised by the booking link or by a reply that picks a
slot; a choice of an earlier proposal is ignored. A slot taken meanwhile means a new
proposal, at most `max_proposals` in all. Deterministic: no clock but the context's.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrators.campaign import RETRY, _dump, _event_payload
from shared.execution.schemas import IntentRef
from shared.meetings.schemas import (
    OPEN_STATUSES,
    BookingResult,
    BookMeeting,
    EndMeeting,
    MeetingBookingInput,
    MeetingOpened,
    MeetingRef,
    MeetingStatus,
    ProposalResult,
    ProposeMeeting,
    SlotChoice,
    StepOutcome,
)

blueprint = df.Blueprint()

Orchestration = Generator[Any, Any, Any]


@blueprint.orchestration_trigger(context_name="context")
def meeting_booking(context: df.DurableOrchestrationContext) -> Orchestration:
    return (yield from run_meeting_booking(context))


def run_meeting_booking(context: df.DurableOrchestrationContext) -> Orchestration:
    """The orchestration's body, a plain generator (unit tests drive it with canned results)."""
    flow = MeetingBookingInput.model_validate(context.get_input())
    opened = MeetingOpened.model_validate(
        (yield context.call_activity_with_retry("open_meeting", RETRY, _dump(flow)))
    )
    if opened.meeting_id is None or opened.status is None:
        return {"status": "skipped", "reason": opened.reason}
    if opened.status not in OPEN_STATUSES:
        return {"status": opened.status.value, "meeting_id": str(opened.meeting_id)}
    ref = MeetingRef(tenant_id=flow.tenant_id, meeting_id=opened.meeting_id)
    result: dict[str, Any] = {"meeting_id": str(opened.meeting_id)}

    def end(status: MeetingStatus, reason: str) -> Any:
        return context.call_activity_with_retry(
            "end_meeting",
            RETRY,
            _dump(
                EndMeeting(
                    tenant_id=flow.tenant_id,
                    meeting_id=ref.meeting_id,
                    status=status,
                    reason=reason,
                )
            ),
        )

    for round_ in range(1, flow.max_proposals + 1):
        while True:
            proposal = ProposalResult.model_validate(
                (
                    yield context.call_activity_with_retry(
                        "propose_meeting",
                        RETRY,
                        _dump(
                            ProposeMeeting(
                                tenant_id=flow.tenant_id,
                                meeting_id=ref.meeting_id,
                                round=round_,
                                choice_timeout_seconds=flow.choice_timeout_seconds,
                            )
                        ),
                    )
                )
            )
            if proposal.outcome is not StepOutcome.WAIT or proposal.wait_until is None:
                break
            yield context.create_timer(proposal.wait_until)
        if proposal.outcome is not StepOutcome.DONE or proposal.intent_id is None:
            return {**result, "status": "held", "reasons": proposal.reasons}
        intent = _dump(IntentRef(tenant_id=flow.tenant_id, intent_id=proposal.intent_id))
        outcome = yield context.call_activity_with_retry("deliver_touch", RETRY, intent)
        while outcome["next_action"] != "none":
            if outcome.get("retry_after_seconds"):
                yield context.create_timer(
                    context.current_utc_datetime
                    + timedelta(seconds=float(outcome["retry_after_seconds"]))
                )
            activity = "deliver_touch" if outcome["next_action"] == "deliver" else "reconcile_touch"
            outcome = yield context.call_activity_with_retry(activity, RETRY, intent)
        if outcome["status"] != "sent":
            reason = f"the proposal was not sent: {outcome.get('reason') or outcome['status']}"
            yield end(MeetingStatus.HELD, reason)
            return {**result, "status": "held", "reasons": [reason]}

        choice_event = context.wait_for_external_event("slot_chosen")
        deadline = context.create_timer(
            context.current_utc_datetime + timedelta(seconds=flow.choice_timeout_seconds)
        )
        while True:
            winner = yield context.task_any([choice_event, deadline])
            if winner is deadline:
                choice = SlotChoice.model_validate(
                    (yield context.call_activity_with_retry("expire_meeting", RETRY, _dump(ref)))
                )
                break
            choice = SlotChoice.model_validate(_event_payload(choice_event))
            if choice.round == round_:
                deadline.cancel()
                break
            choice_event = context.wait_for_external_event("slot_chosen")
        if choice.declined:
            yield end(MeetingStatus.DECLINED, choice.declined)
            return {**result, "status": "declined", "reason": choice.declined}
        if choice.index is None:
            return {**result, "status": "expired"}

        while True:
            booked = BookingResult.model_validate(
                (
                    yield context.call_activity_with_retry(
                        "book_meeting",
                        RETRY,
                        _dump(
                            BookMeeting(
                                tenant_id=flow.tenant_id,
                                meeting_id=ref.meeting_id,
                                round=round_,
                                index=choice.index,
                            )
                        ),
                    )
                )
            )
            if booked.outcome is not StepOutcome.WAIT or booked.wait_until is None:
                break
            yield context.create_timer(booked.wait_until)
        if booked.outcome is StepOutcome.TAKEN:
            continue
        if booked.outcome is not StepOutcome.DONE:
            return {**result, "status": "held", "reasons": booked.reasons}
        meeting = yield context.call_activity_with_retry("finish_meeting", RETRY, _dump(ref))
        return {
            **result,
            "status": "booked",
            "calendar_event_uid": booked.calendar_event_uid,
            "deal_id": meeting["deal_id"],
            "choice_source": choice.source,
        }
    reason = f"every chosen slot was taken before it was booked ({flow.max_proposals} proposals)"
    yield end(MeetingStatus.HELD, reason)
    return {**result, "status": "held", "reasons": [reason]}

"""reply_to_deal (ARCHITECTURE.md §4): classify → intent event → deal gating → deal →
offer booking.

Classification is idempotent (the reply was usually classified on arrival, with its intent
event, suppression and health effects); only positive replies are gated. The gate's
outcome decides: create or update now, ask "Create Deal?" and wait for the decision or the
timeout, or nothing (the gate recorded why). A written deal starts meeting_booking; a
reply to an open meeting proposal goes to that meeting instead (its pick or its decline).
Deterministic: no clock but the context's.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from orchestrators.campaign import RETRY, _dump, _event_payload
from shared.deals.schemas import (
    ClassifiedReply,
    DealApprovalAsk,
    DealGateResult,
    DealHold,
    DealWrite,
    GateOutcome,
    InboundRef,
    ReplyRef,
    ReplyToDealInput,
)
from shared.meetings.schemas import MeetingReplyRoute, RoutedReply, StartMeeting

blueprint = df.Blueprint()

Orchestration = Generator[Any, Any, Any]


@blueprint.orchestration_trigger(context_name="context")
def reply_to_deal(context: df.DurableOrchestrationContext) -> Orchestration:
    return (yield from run_reply_to_deal(context))


def run_reply_to_deal(context: df.DurableOrchestrationContext) -> Orchestration:
    """The orchestration's body, a plain generator (unit tests drive it with canned results)."""
    flow = ReplyToDealInput.model_validate(context.get_input())
    classified = ClassifiedReply.model_validate(
        (
            yield context.call_activity_with_retry(
                "classify_reply",
                RETRY,
                _dump(InboundRef(tenant_id=flow.tenant_id, inbound_id=flow.inbound_id)),
            )
        )
    )
    routed = RoutedReply.model_validate(
        (
            yield context.call_activity_with_retry(
                "route_meeting_reply",
                RETRY,
                _dump(
                    MeetingReplyRoute(
                        tenant_id=flow.tenant_id,
                        inbound_id=flow.inbound_id,
                        label=classified.label,
                    )
                ),
            )
        )
    )
    if routed.routed:
        # An answer to our meeting proposal: meeting_booking takes it from here.
        return {
            "status": "meeting_reply",
            "label": classified.label,
            "meeting_id": str(routed.meeting_id),
        }
    if not classified.positive:
        return {"status": "no_deal", "label": classified.label}
    gate = DealGateResult.model_validate(
        (
            yield context.call_activity_with_retry(
                "gate_deal",
                RETRY,
                _dump(ReplyRef(tenant_id=flow.tenant_id, reply_id=classified.reply_id)),
            )
        )
    )
    if gate.outcome is GateOutcome.NONE:
        return {"status": "blocked", "reasons": gate.reasons}
    approval_id: uuid.UUID | None = None
    if gate.outcome is GateOutcome.APPROVAL:
        approval_id = uuid.UUID(
            str(
                (
                    yield context.call_activity_with_retry(
                        "request_deal_approval",
                        RETRY,
                        _dump(
                            DealApprovalAsk(
                                tenant_id=flow.tenant_id,
                                gate=gate,
                                orchestration_instance_id=context.instance_id,
                            )
                        ),
                    )
                )
            )
        )
        approval = context.wait_for_external_event("approval")
        deadline = context.create_timer(
            context.current_utc_datetime + timedelta(seconds=flow.approval_timeout_seconds)
        )
        winner = yield context.task_any([approval, deadline])
        if winner is deadline:
            reason = "the deal approval timed out"
        else:
            deadline.cancel()
            status = _event_payload(approval).get("status")
            reason = "" if status == "approved" else f"the deal was {status or 'not approved'}"
        if reason:
            yield context.call_activity_with_retry(
                "hold_deal",
                RETRY,
                _dump(DealHold(tenant_id=flow.tenant_id, gate=gate, reason=reason)),
            )
            return {"status": "held", "reason": reason}
    deal = yield context.call_activity_with_retry(
        "write_deal",
        RETRY,
        _dump(DealWrite(tenant_id=flow.tenant_id, gate=gate, approval_id=approval_id)),
    )
    outcome = {"status": deal["status"], "deal_id": deal["id"], "outcome": gate.outcome.value}
    if deal["status"] != "created":
        return outcome
    meeting = yield context.call_activity_with_retry(
        "start_meeting_booking",
        RETRY,
        _dump(
            StartMeeting(
                tenant_id=flow.tenant_id,
                inbound_id=flow.inbound_id,
                correlation_id=gate.correlation_id or flow.correlation_id,
            )
        ),
    )
    return {**outcome, "meeting_instance_id": meeting}

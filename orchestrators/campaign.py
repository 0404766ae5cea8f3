"""Campaign orchestrations (ARCHITECTURE.md §4): campaign_run, canary_escalation and
prospect_sequence.

Deterministic generators: no clock but `context.current_utc_datetime`, no I/O, activities by
name with their pydantic inputs dumped to JSON. A journey listens for one `stop` event for its
whole life (a reply, an unsubscribe, the kill switch, the campaign stopping): the waiter is
created once and offered to every wait, so a stop raised at any moment is never lost.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df

from shared.execution.schemas import (
    CampaignRef,
    CampaignRunInput,
    CanaryInput,
    CanaryOutcome,
    CanaryVerdict,
    Engagement,
    EngagementQuery,
    EnrolBatch,
    EnrolResult,
    IntentRef,
    JourneyInput,
    JourneyStatus,
    JourneyUpdate,
    LogTouch,
    PrepareTouch,
    SendOutcome,
    SendTouch,
    SequencePlan,
    SequenceRef,
    TouchOutcome,
    TouchPrepared,
    TouchSendResult,
)

blueprint = df.Blueprint()

# Activities are at-least-once and idempotent; transient failures (database restarts,
# provider hiccups) are retried by the host, with backoff, before the journey gives up.
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=5)
RETRY.backoff_coefficient = 2.0

Orchestration = Generator[Any, Any, Any]
# Stop reasons that are a person answering (reply labels). An out-of-office or other automatic
# reply stops the sequence too but is nobody answering, so it ends the journey as stopped, as
# bounces, complaints, unsubscribes, the kill switch and a stopped campaign do: "replied" is
# what reply rates and the rep's queue count.
HUMAN_REPLIES = frozenset({"reply", "positive", "neutral", "objection"})


def _event_payload(task: Any) -> dict[str, Any]:
    """An external event's data: the SDK may hand it over still JSON-encoded."""
    result = task.result
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError:
            return {}
    return result if isinstance(result, dict) else {}


def _dump(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json")
    return dumped


@blueprint.orchestration_trigger(context_name="context")
def prospect_sequence(context: df.DurableOrchestrationContext) -> Orchestration:
    journey = JourneyInput.model_validate(context.get_input())
    stop = context.wait_for_external_event("stop")

    def end(status: JourneyStatus, reason: str | None, step_id: str | None = None) -> Any:
        return context.call_activity_with_retry(
            "update_journey",
            RETRY,
            _dump(
                JourneyUpdate(
                    tenant_id=journey.tenant_id,
                    campaign_id=journey.campaign_id,
                    prospect_id=journey.prospect_id,
                    status=status,
                    reason=reason,
                    step_id=step_id,
                    correlation_id=journey.correlation_id,
                )
            ),
        )

    def stop_reason() -> str:
        return str(_event_payload(stop).get("reason") or "stopped")

    def stop_status() -> JourneyStatus:
        return JourneyStatus.REPLIED if stop_reason() in HUMAN_REPLIES else JourneyStatus.STOPPED

    try:
        plan = SequencePlan.model_validate(
            (
                yield context.call_activity_with_retry(
                    "load_sequence_plan",
                    RETRY,
                    _dump(
                        SequenceRef(tenant_id=journey.tenant_id, sequence_id=journey.sequence_id)
                    ),
                )
            )
        )
    except Exception as exc:
        yield end(JourneyStatus.HELD, f"could not load the sequence: {exc}")
        return {"status": "held"}
    steps = {str(step["id"]): step for step in plan.steps}
    current: str | None = plan.first_step_id
    touch = 0
    previous_intent: uuid.UUID | None = None
    sent: list[str] = []
    while current is not None:
        step = steps[current]
        context.set_custom_status({"step": current, "sent": len(sent)})
        if step["type"] == "email":
            touch += 1
            try:
                prepared = TouchPrepared.model_validate(
                    (
                        yield context.call_activity_with_retry(
                            "prepare_touch",
                            RETRY,
                            _dump(
                                PrepareTouch(journey=journey, step_id=current, touch_number=touch)
                            ),
                        )
                    )
                )
            except Exception as exc:
                yield end(JourneyStatus.HELD, f"drafting failed: {exc}", current)
                return {"status": "held", "sent": sent}
            if prepared.outcome is TouchOutcome.DENIED:
                yield end(JourneyStatus.HELD, "; ".join(prepared.reasons) or "denied", current)
                return {"status": "held", "sent": sent, "reasons": prepared.reasons}
            if prepared.outcome is TouchOutcome.APPROVAL_REQUIRED:
                approval = context.wait_for_external_event("approval")
                deadline = context.create_timer(
                    context.current_utc_datetime
                    + timedelta(seconds=journey.approval_timeout_seconds)
                )
                winner = yield context.task_any([approval, stop, deadline])
                if winner is not deadline:
                    deadline.cancel()
                if winner is stop:
                    status = stop_status()
                    yield end(status, stop_reason(), current)
                    return {"status": status.value, "sent": sent}
                if winner is deadline:
                    yield end(JourneyStatus.HELD, "the approval timed out", current)
                    return {"status": "held", "sent": sent}
                approval_status = _event_payload(approval).get("status")
                if approval_status != "approved":
                    yield end(JourneyStatus.HELD, f"the draft was {approval_status}", current)
                    return {"status": "held", "sent": sent}
                yield end(JourneyStatus.RUNNING, None, current)
            while True:
                try:
                    result = TouchSendResult.model_validate(
                        (
                            yield context.call_activity_with_retry(
                                "send_touch",
                                RETRY,
                                _dump(
                                    SendTouch(
                                        journey=journey,
                                        step_id=current,
                                        touch_number=touch,
                                        draft_id=prepared.draft_id,
                                        approval_id=prepared.approval_id,
                                        previous_intent_id=previous_intent,
                                    )
                                ),
                            )
                        )
                    )
                except Exception as exc:
                    yield end(JourneyStatus.HELD, f"the send check failed: {exc}", current)
                    return {"status": "held", "sent": sent}
                if result.outcome is not SendOutcome.WAIT:
                    break
                until = datetime.fromisoformat(str(result.wait_until))
                timer = context.create_timer(until)
                winner = yield context.task_any([timer, stop])
                if winner is stop:
                    timer.cancel()
                    status = stop_status()
                    yield end(status, stop_reason(), current)
                    return {"status": status.value, "sent": sent}
            if result.outcome is SendOutcome.DENIED:
                yield end(JourneyStatus.HELD, "; ".join(result.reasons) or "denied", current)
                return {"status": "held", "sent": sent, "reasons": result.reasons}
            assert result.intent_id is not None
            intent_id = result.intent_id
            intent = _dump(IntentRef(tenant_id=journey.tenant_id, intent_id=intent_id))
            outcome = yield context.call_activity_with_retry("deliver_touch", RETRY, intent)
            while outcome["next_action"] != "none":
                if outcome.get("retry_after_seconds"):
                    yield context.create_timer(
                        context.current_utc_datetime
                        + timedelta(seconds=float(outcome["retry_after_seconds"]))
                    )
                activity = (
                    "deliver_touch" if outcome["next_action"] == "deliver" else "reconcile_touch"
                )
                outcome = yield context.call_activity_with_retry(activity, RETRY, intent)
            if outcome["status"] == "sent":
                yield context.call_activity_with_retry(
                    "log_touch",
                    RETRY,
                    _dump(LogTouch(journey=journey, intent_id=intent_id, step_id=current)),
                )
                sent.append(current)
                previous_intent = intent_id
            elif outcome["status"] != "draft":  # draft-only mode records and carries on
                yield end(JourneyStatus.HELD, outcome.get("reason") or outcome["status"], current)
                return {"status": "held", "sent": sent}
            current = step.get("next")
        elif step["type"] == "delay":
            timer = context.create_timer(
                context.current_utc_datetime + timedelta(seconds=int(step["seconds"]))
            )
            winner = yield context.task_any([timer, stop])
            if winner is stop:
                timer.cancel()
                status = stop_status()
                yield end(status, stop_reason(), current)
                return {"status": status.value, "sent": sent}
            current = step.get("next")
        else:
            engagement = Engagement.model_validate(
                (
                    yield context.call_activity_with_retry(
                        "engagement",
                        RETRY,
                        _dump(
                            EngagementQuery(
                                tenant_id=journey.tenant_id,
                                campaign_id=journey.campaign_id,
                                prospect_id=journey.prospect_id,
                            )
                        ),
                    )
                )
            )
            holds = {
                "replied": engagement.replied,
                "not_replied": not engagement.replied,
                "bounced": engagement.bounced,
            }[str(step["condition"])]
            current = step.get("then") if holds else step.get("otherwise")
    yield end(JourneyStatus.COMPLETED, None)
    return {"status": "completed", "sent": sent}


@blueprint.orchestration_trigger(context_name="context")
def canary_escalation(context: df.DurableOrchestrationContext) -> Orchestration:
    """Send to the canary batch, watch it for the observation window, then escalate or pause."""
    canary = CanaryInput.model_validate(context.get_input())
    yield context.call_activity_with_retry(
        "enrol_batch",
        RETRY,
        _dump(
            EnrolBatch(
                tenant_id=canary.tenant_id,
                campaign_id=canary.campaign_id,
                sequence_id=canary.sequence_id,
                after_position=0,
                limit=1000,
                canary=True,
            )
        ),
    )
    yield context.create_timer(
        context.current_utc_datetime + timedelta(seconds=canary.observation_seconds)
    )
    verdict = CanaryVerdict.model_validate(
        (
            yield context.call_activity_with_retry(
                "canary_verdict",
                RETRY,
                _dump(CampaignRef(tenant_id=canary.tenant_id, campaign_id=canary.campaign_id)),
            )
        )
    )
    yield context.call_activity_with_retry(
        "record_canary_outcome",
        RETRY,
        _dump(
            CanaryOutcome(
                tenant_id=canary.tenant_id, campaign_id=canary.campaign_id, verdict=verdict
            )
        ),
    )
    return _dump(verdict)


@blueprint.orchestration_trigger(context_name="context")
def campaign_run(context: df.DurableOrchestrationContext) -> Orchestration:
    return (yield from run_campaign_run(context))


def run_campaign_run(context: df.DurableOrchestrationContext) -> Orchestration:
    """Canary first (when on), then enrol the rest in batches; continue_as_new per batch keeps
    the history small however many prospects the campaign has. A plain generator: unit tests
    drive it with canned results."""
    run = CampaignRunInput.model_validate(context.get_input())
    if not run.canary_done:
        verdict = CanaryVerdict.model_validate(
            (
                yield context.call_sub_orchestrator(
                    "canary_escalation",
                    _dump(
                        CanaryInput(
                            tenant_id=run.tenant_id,
                            campaign_id=run.campaign_id,
                            sequence_id=run.sequence_id,
                            observation_seconds=run.canary_observation_seconds,
                        )
                    ),
                    f"canary:{run.campaign_id}",
                )
            )
        )
        if not verdict.escalate:
            return {"status": "paused", "reasons": verdict.reasons, "enrolled": run.enrolled}
        run = run.model_copy(update={"canary_done": True})
    result = EnrolResult.model_validate(
        (
            yield context.call_activity_with_retry(
                "enrol_batch",
                RETRY,
                _dump(
                    EnrolBatch(
                        tenant_id=run.tenant_id,
                        campaign_id=run.campaign_id,
                        sequence_id=run.sequence_id,
                        after_position=run.after_position,
                        limit=run.batch_size,
                    )
                ),
            )
        )
    )
    enrolled = run.enrolled + result.enrolled
    if result.done:
        return {"status": "enrolled", "enrolled": enrolled}
    # A paused campaign asks again after the pause poll, not at the enrolment pace (1 s).
    wait = result.wait_seconds or run.pace_seconds
    if wait:
        yield context.create_timer(context.current_utc_datetime + timedelta(seconds=wait))
    context.continue_as_new(
        _dump(run.model_copy(update={"after_position": result.last_position, "enrolled": enrolled}))
    )
    return None

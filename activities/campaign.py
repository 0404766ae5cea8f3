"""Campaign activities: thin wrappers over shared.execution, one pydantic input each.

Each runs its own unit(s) of work inside the service; the ones that start orchestrations
take the durable client binding (ARCHITECTURE.md §6).
"""

from __future__ import annotations

import asyncio
from typing import Any

import azure.durable_functions as df

from shared.config import get_settings
from shared.execution import control, service
from shared.execution.orchestrations import DurableOrchestrations
from shared.execution.schemas import (
    CampaignRef,
    CanaryOutcome,
    EngagementQuery,
    EnrolBatch,
    EnrolResult,
    IntentRef,
    JourneyInput,
    JourneyUpdate,
    LogTouch,
    PrepareTouch,
    SendTouch,
    SequenceRef,
    journey_instance_id,
)
from shared.mail import sending

blueprint = df.Blueprint()


@blueprint.activity_trigger(input_name="payload")
def load_sequence_plan(payload: dict[str, Any]) -> dict[str, Any]:
    ref = SequenceRef.model_validate(payload)
    return service.sequence_plan(ref.tenant_id, ref.sequence_id).model_dump(mode="json")


@blueprint.activity_trigger(input_name="payload")
def prepare_touch(payload: dict[str, Any]) -> dict[str, Any]:
    return service.prepare_touch(PrepareTouch.model_validate(payload)).model_dump(mode="json")


@blueprint.activity_trigger(input_name="payload")
def send_touch(payload: dict[str, Any]) -> dict[str, Any]:
    return service.send_touch(SendTouch.model_validate(payload)).model_dump(mode="json")


@blueprint.activity_trigger(input_name="payload")
def deliver_touch(payload: dict[str, Any]) -> dict[str, Any]:
    ref = IntentRef.model_validate(payload)
    return sending.deliver(ref.tenant_id, ref.intent_id).model_dump(mode="json")


@blueprint.activity_trigger(input_name="payload")
def reconcile_touch(payload: dict[str, Any]) -> dict[str, Any]:
    ref = IntentRef.model_validate(payload)
    return sending.reconcile(ref.tenant_id, ref.intent_id).model_dump(mode="json")


@blueprint.activity_trigger(input_name="payload")
def log_touch(payload: dict[str, Any]) -> None:
    service.log_touch(LogTouch.model_validate(payload))


@blueprint.activity_trigger(input_name="payload")
def update_journey(payload: dict[str, Any]) -> None:
    service.update_journey(JourneyUpdate.model_validate(payload))


@blueprint.activity_trigger(input_name="payload")
def engagement(payload: dict[str, Any]) -> dict[str, Any]:
    return service.engagement(EngagementQuery.model_validate(payload)).model_dump(mode="json")


@blueprint.activity_trigger(input_name="payload")
def canary_verdict(payload: dict[str, Any]) -> dict[str, Any]:
    ref = CampaignRef.model_validate(payload)
    return service.canary_verdict(ref.tenant_id, ref.campaign_id).model_dump(mode="json")


@blueprint.activity_trigger(input_name="payload")
def record_canary_outcome(payload: dict[str, Any]) -> None:
    outcome = CanaryOutcome.model_validate(payload)
    control.record_canary_outcome(outcome.tenant_id, outcome.campaign_id, outcome.verdict)


@blueprint.activity_trigger(input_name="payload")
@blueprint.durable_client_input(client_name="client")
async def enrol_batch(
    payload: dict[str, Any], client: df.DurableOrchestrationClient
) -> dict[str, Any]:
    """Start one `prospect_sequence` per pending member, with deterministic instance ids:
    a retried batch finds the instances already running and starts nothing twice."""
    batch = EnrolBatch.model_validate(payload)
    enrolment = await asyncio.to_thread(service.enrolment_batch, batch)
    settings = get_settings()
    if enrolment.paused:
        return EnrolResult(
            enrolled=0,
            last_position=batch.after_position,
            done=False,
            wait_seconds=settings.pause_poll_seconds,
        ).model_dump(mode="json")
    members = enrolment.items
    approval_timeout = settings.approval_ttl_seconds
    journeys = [
        JourneyInput(
            tenant_id=batch.tenant_id,
            campaign_id=batch.campaign_id,
            sequence_id=batch.sequence_id,
            prospect_id=member.prospect_id,
            mailbox_id=member.mailbox_id,
            correlation_id=journey_instance_id(batch.campaign_id, member.prospect_id),
            canary=member.canary,
            approval_timeout_seconds=approval_timeout,
        )
        for member in members
    ]
    started = {journey.prospect_id: journey.instance_id for journey in journeys}
    await asyncio.to_thread(service.assign_instances, batch.tenant_id, batch.campaign_id, started)
    orchestrations = DurableOrchestrations(client)
    for journey in journeys:
        await orchestrations.start_once(
            "prospect_sequence", journey.instance_id, journey.model_dump(mode="json")
        )
    await asyncio.to_thread(service.mark_enrolled, batch.tenant_id, batch.campaign_id, started)
    last = max((m.position for m in members), default=batch.after_position)
    return EnrolResult(
        enrolled=len(started), last_position=last, done=len(members) < batch.limit
    ).model_dump(mode="json")

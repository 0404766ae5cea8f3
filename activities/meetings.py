"""meeting_booking activities: thin wrappers over shared.meetings, one pydantic input each.

The two that wake orchestrations (starting meeting_booking, routing a reply's choice to it)
take the durable client binding (ARCHITECTURE.md §6).
"""

from __future__ import annotations

import asyncio
from typing import Any

import azure.durable_functions as df

from shared.config import get_settings
from shared.execution.orchestrations import DurableOrchestrations
from shared.meetings import service
from shared.meetings.schemas import (
    BookMeeting,
    EndMeeting,
    MeetingBookingInput,
    MeetingRef,
    MeetingReplyRoute,
    ProposeMeeting,
    StartMeeting,
)

blueprint = df.Blueprint()


@blueprint.activity_trigger(input_name="payload")
def open_meeting(payload: dict[str, Any]) -> dict[str, Any]:
    flow = MeetingBookingInput.model_validate(payload)
    return service.open_meeting(flow).model_dump(mode="json")


@blueprint.activity_trigger(input_name="payload")
def propose_meeting(payload: dict[str, Any]) -> dict[str, Any]:
    return service.propose(ProposeMeeting.model_validate(payload)).model_dump(mode="json")


@blueprint.activity_trigger(input_name="payload")
def book_meeting(payload: dict[str, Any]) -> dict[str, Any]:
    return service.book(BookMeeting.model_validate(payload)).model_dump(mode="json")


@blueprint.activity_trigger(input_name="payload")
def finish_meeting(payload: dict[str, Any]) -> dict[str, Any]:
    ref = MeetingRef.model_validate(payload)
    return service.finish_booking(ref.tenant_id, ref.meeting_id).model_dump(mode="json")


@blueprint.activity_trigger(input_name="payload")
def expire_meeting(payload: dict[str, Any]) -> dict[str, Any]:
    ref = MeetingRef.model_validate(payload)
    return service.expire(ref.tenant_id, ref.meeting_id).model_dump(mode="json")


@blueprint.activity_trigger(input_name="payload")
def end_meeting(payload: dict[str, Any]) -> dict[str, Any]:
    return service.end_meeting(EndMeeting.model_validate(payload)).model_dump(mode="json")


@blueprint.activity_trigger(input_name="payload")
@blueprint.durable_client_input(client_name="client")
async def start_meeting_booking(
    payload: dict[str, Any], client: df.DurableOrchestrationClient
) -> str:
    """Start meeting_booking for the reply, with its deterministic id (`meeting:{inbound}`);
    a retried start finds it and starts nothing."""
    ask = StartMeeting.model_validate(payload)
    settings = get_settings()
    flow = MeetingBookingInput(
        tenant_id=ask.tenant_id,
        inbound_id=ask.inbound_id,
        correlation_id=ask.correlation_id,
        choice_timeout_seconds=settings.meeting_choice_timeout_seconds,
        max_proposals=settings.meeting_max_proposals,
    )
    await DurableOrchestrations(client).start_once(
        "meeting_booking", flow.instance_id, flow.model_dump(mode="json")
    )
    return flow.instance_id


@blueprint.activity_trigger(input_name="payload")
@blueprint.durable_client_input(client_name="client")
async def route_meeting_reply(
    payload: dict[str, Any], client: df.DurableOrchestrationClient
) -> dict[str, Any]:
    """A reply to an open proposal: its choice (or decline) to that meeting's orchestration.
    The choice is recorded first, so a lost event is still found when the proposal times out."""
    route = MeetingReplyRoute.model_validate(payload)
    routed, instance_id = await asyncio.to_thread(service.route_reply, route)
    if instance_id is not None and routed.choice is not None:
        await DurableOrchestrations(client).raise_event(
            instance_id, "slot_chosen", routed.choice.model_dump(mode="json")
        )
    return routed.model_dump(mode="json")

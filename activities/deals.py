"""reply_to_deal activities: thin wrappers over shared.replies and shared.deals, one pydantic
input and one unit of work each."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from shared.db.unit_of_work import tenant_unit_of_work
from shared.deals import service
from shared.deals.schemas import (
    ClassifiedReply,
    DealApprovalAsk,
    DealHold,
    DealWrite,
    InboundRef,
    ReplyRef,
)
from shared.replies.schemas import ReplyLabel
from shared.replies.service import classify_inbound

blueprint = df.Blueprint()


@blueprint.activity_trigger(input_name="payload")
def classify_reply(payload: dict[str, Any]) -> dict[str, Any]:
    """Classify the inbound message (a no-op when it was classified on arrival)."""
    ref = InboundRef.model_validate(payload)
    with tenant_unit_of_work(ref.tenant_id) as uow:
        reply = classify_inbound(uow, ref.inbound_id).reply
    label = reply.human_label or reply.label
    return ClassifiedReply(
        reply_id=reply.id, label=label.value, positive=label is ReplyLabel.POSITIVE
    ).model_dump(mode="json")


@blueprint.activity_trigger(input_name="payload")
def gate_deal(payload: dict[str, Any]) -> dict[str, Any]:
    ref = ReplyRef.model_validate(payload)
    with tenant_unit_of_work(ref.tenant_id) as uow:
        return service.gate_deal(uow, ref.reply_id).model_dump(mode="json")


@blueprint.activity_trigger(input_name="payload")
def request_deal_approval(payload: dict[str, Any]) -> str:
    ask = DealApprovalAsk.model_validate(payload)
    with tenant_unit_of_work(ask.tenant_id) as uow:
        return str(service.request_deal_approval(uow, ask.gate, ask.orchestration_instance_id))


@blueprint.activity_trigger(input_name="payload")
def write_deal(payload: dict[str, Any]) -> dict[str, Any]:
    write = DealWrite.model_validate(payload)
    with tenant_unit_of_work(write.tenant_id) as uow:
        deal = service.create_or_update_deal(uow, write.gate, approval_id=write.approval_id)
    return deal.model_dump(mode="json")


@blueprint.activity_trigger(input_name="payload")
def hold_deal(payload: dict[str, Any]) -> dict[str, Any]:
    hold = DealHold.model_validate(payload)
    with tenant_unit_of_work(hold.tenant_id) as uow:
        return service.hold_deal(uow, hold.gate, hold.reason).model_dump(mode="json")

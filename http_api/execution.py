"""Execution (seed §10): campaign membership, start and stop, status; mailboxes."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, status

from http_api.auth import TenantContext, require_permission
from http_api.durable import current_durable_client
from shared.deliverability import service as deliverability
from shared.deliverability.schemas import MailboxCreate, MailboxRead
from shared.execution import control
from shared.execution.orchestrations import DurableOrchestrations
from shared.execution.schemas import campaign_instance_id
from shared.identity.permissions import Permission

router = APIRouter(tags=["execution"])


@router.post("/campaigns/{campaign_id}/prospects")
def add_campaign_members(
    campaign_id: uuid.UUID,
    body: control.AddMembers,
    ctx: Annotated[TenantContext, require_permission(Permission.CAMPAIGNS_WRITE)],
) -> control.MembersAdded:
    return control.add_members(ctx.uow, campaign_id, body, ctx.actor)


@router.post("/campaigns/{campaign_id}/start", status_code=status.HTTP_202_ACCEPTED)
def start_campaign(
    campaign_id: uuid.UUID,
    background: BackgroundTasks,
    ctx: Annotated[TenantContext, require_permission(Permission.CAMPAIGNS_RUN)],
    # After authorization: only an authorized caller learns whether orchestrations run here.
    client: Annotated[Any, Depends(current_durable_client)],
) -> dict[str, str]:
    run = control.start_campaign(ctx.uow, campaign_id, ctx.actor)
    instance_id = campaign_instance_id(campaign_id)
    # After the response, so after the commit: the orchestration reads what we just wrote.
    background.add_task(
        DurableOrchestrations(client).start,
        "campaign_run",
        instance_id,
        run.model_dump(mode="json"),
    )
    return {"campaign_id": str(campaign_id), "instance_id": instance_id}


@router.post("/campaigns/{campaign_id}/stop", status_code=status.HTTP_202_ACCEPTED)
def stop_campaign(
    campaign_id: uuid.UUID,
    background: BackgroundTasks,
    ctx: Annotated[TenantContext, require_permission(Permission.CAMPAIGNS_RUN)],
    # After authorization: only an authorized caller learns whether orchestrations run here.
    client: Annotated[Any, Depends(current_durable_client)],
) -> dict[str, Any]:
    instances = control.stop_campaign(ctx.uow, campaign_id, ctx.actor)
    orchestrations = DurableOrchestrations(client)
    for instance_id in instances:
        background.add_task(
            orchestrations.raise_event, instance_id, "stop", {"reason": "campaign stopped"}
        )
    return {"campaign_id": str(campaign_id), "journeys_signalled": len(instances) - 1}


@router.post("/campaigns/{campaign_id}/pause")
def pause_campaign(
    campaign_id: uuid.UUID,
    ctx: Annotated[TenantContext, require_permission(Permission.CAMPAIGNS_RUN)],
) -> dict[str, str]:
    return {
        "campaign_id": str(campaign_id),
        "status": control.pause_campaign(ctx.uow, campaign_id, ctx.actor),
    }


@router.post("/campaigns/{campaign_id}/resume")
def resume_campaign(
    campaign_id: uuid.UUID,
    ctx: Annotated[TenantContext, require_permission(Permission.CAMPAIGNS_RUN)],
) -> dict[str, str]:
    return {
        "campaign_id": str(campaign_id),
        "status": control.resume_campaign(ctx.uow, campaign_id, ctx.actor),
    }


@router.get("/execution/status")
def execution_status(
    ctx: Annotated[TenantContext, require_permission(Permission.CAMPAIGNS_READ)],
    campaign_id: uuid.UUID | None = None,
) -> list[control.MemberCounts]:
    return control.execution_status(ctx.uow, [campaign_id] if campaign_id else [])


@router.post("/mailboxes", status_code=status.HTTP_201_CREATED)
def create_mailbox(
    body: MailboxCreate,
    ctx: Annotated[TenantContext, require_permission(Permission.DELIVERABILITY_WRITE)],
) -> MailboxRead:
    return deliverability.create_mailbox(ctx.uow, body, ctx.actor)


@router.get("/mailboxes")
def list_mailboxes(
    ctx: Annotated[TenantContext, require_permission(Permission.DELIVERABILITY_READ)],
) -> list[MailboxRead]:
    return deliverability.list_mailboxes(ctx.uow)

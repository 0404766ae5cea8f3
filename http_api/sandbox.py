"""The sandbox mailbox's test hooks (local and test only; 404 in Azure)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, status
from fastapi.concurrency import run_in_threadpool

from http_api.auth import TenantContext, require_permission
from shared.config import Environment, get_settings
from shared.errors import ASEPError, NotFound
from shared.identity.permissions import Permission
from shared.mail import service
from shared.mail.inbound import ReplySignal, dispatch_reply_signals
from shared.mail.schemas import FaultPlan, IngestResult, SandboxMessagePage
from shared.replies.service import classify_on_arrival

INBOUND_MEDIA_TYPES = {"message/rfc822", "text/plain"}


class UnsupportedMediaType(ASEPError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


def sandbox_enabled() -> None:
    if get_settings().env is Environment.AZURE:
        raise NotFound()


router = APIRouter(
    prefix="/sandbox/mailboxes", tags=["sandbox"], dependencies=[Depends(sandbox_enabled)]
)


def reply_signal(request: Request) -> ReplySignal:
    signal: ReplySignal = request.app.state.reply_signal
    return signal


def _media_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in INBOUND_MEDIA_TYPES:
        raise UnsupportedMediaType("Send the raw message as message/rfc822 or text/plain.")


@router.post("/{mailbox_id}/inbound", status_code=status.HTTP_202_ACCEPTED)
async def inject_inbound(
    mailbox_id: uuid.UUID,
    request: Request,
    ctx: Annotated[TenantContext, require_permission(Permission.CAMPAIGNS_RUN)],
    background: BackgroundTasks,
    signal: Annotated[ReplySignal, Depends(reply_signal)],
) -> IngestResult:
    """The raw RFC 5322 message is the body (message/rfc822 or text/plain), read as bytes:
    the media type is checked after authorization, so it tells an outsider nothing."""
    _media_type(request)
    raw = await request.body()
    result = await run_in_threadpool(service.inject_inbound, ctx.uow, mailbox_id, raw)
    # Classified in the same transaction: suppression, intent events and health take effect
    # with the message's arrival, before any journey hears of it.
    await run_in_threadpool(classify_on_arrival, ctx.uow, result.inbound.id)
    # Runs after the request's transaction commits, so the signal names a stored message.
    background.add_task(dispatch_reply_signals, ctx.tenant_id, signal)
    return result


@router.get("/{mailbox_id}/messages")
def list_messages(
    mailbox_id: uuid.UUID,
    ctx: Annotated[TenantContext, require_permission(Permission.CAMPAIGNS_READ)],
    direction: Literal["sent", "inbound"] | None = None,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    raw: bool = False,
) -> SandboxMessagePage:
    return service.list_sandbox_messages(
        ctx.uow, mailbox_id, direction=direction, after=after, limit=limit, include_raw=raw
    )


@router.put("/{mailbox_id}/faults")
def set_faults(
    mailbox_id: uuid.UUID,
    body: FaultPlan,
    ctx: Annotated[TenantContext, require_permission(Permission.CAMPAIGNS_RUN)],
) -> FaultPlan:
    return service.set_faults(ctx.uow, mailbox_id, body)

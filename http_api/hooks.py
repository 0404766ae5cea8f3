"""Webhooks from providers: `/hooks/hubspot` (signature v3, then queued)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from http_api.auth import public_endpoint
from shared.config import Settings, get_settings
from shared.crm import webhooks
from shared.errors import Unauthorized
from shared.queue.factory import queue_sender
from shared.queue.port import QueueSender

router = APIRouter(prefix="/hooks", tags=["webhooks"])


class WebhookNotConfigured(Unauthorized):
    code = "webhook_not_configured"
    title = "Webhooks from this provider are not configured"


def crm_event_queue() -> QueueSender:
    return queue_sender()


def hook_settings() -> Settings:
    return get_settings()


@router.post("/hubspot", status_code=status.HTTP_204_NO_CONTENT)
async def hubspot_webhook(
    request: Request,
    _: Annotated[None, public_endpoint()],
    queue: Annotated[QueueSender, Depends(crm_event_queue)],
    settings: Annotated[Settings, Depends(hook_settings)],
) -> Response:
    if settings.hubspot_client_secret is None:
        raise WebhookNotConfigured()
    body = await request.body()
    # HubSpot signs the URL it called (our public address), not the one behind the proxy.
    url = settings.public_base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    try:
        await run_in_threadpool(
            webhooks.accept,
            body,
            method=request.method,
            url=url,
            signature=request.headers.get("x-hubspot-signature-v3"),
            timestamp=request.headers.get("x-hubspot-request-timestamp"),
            secret=settings.hubspot_client_secret.get_secret_value(),
            queue=queue,
            max_age_seconds=settings.hubspot_webhook_max_age_seconds,
        )
    except webhooks.WebhookRefused as exc:
        raise Unauthorized() from exc
    return Response(status_code=status.HTTP_204_NO_CONTENT)

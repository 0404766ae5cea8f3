"""HubSpot webhooks: verify, dedupe, queue; then process from the `crm-events` queue.

Signature v3 (https://developers.hubspot.com/docs/apps/developer-platform/build-apps/
authentication/request-validation): base64(HMAC-SHA256(client secret, method + URI + body +
timestamp)), where the URI is the full request URL with HubSpot's listed percent-escapes
decoded, and X-HubSpot-Request-Timestamp (ms) older than 5 minutes is refused. Compared in
constant time. A request whose exact signature was already accepted is a replay and refused;
HubSpot's own retries are signed anew and dedupe on eventId instead.

The request is answered fast: only verification, a dedupe row per event and one queue
message per event happen inline. Suppression and deal-state changes happen in the
queue-triggered function, which dedupes again (queues deliver at least once).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert

from shared.audit.schemas import Actor, ActorType, AuditEventType
from shared.audit.service import AuditChain
from shared.crm.hubspot import external_to_internal
from shared.crm.integration_orm import CrmWebhookEvent
from shared.crm.orm import CrmObject
from shared.db.directory import RouteKind, resolve_tenant
from shared.db.unit_of_work import TenantUnitOfWork, directory_unit_of_work, tenant_unit_of_work
from shared.deliverability import suppression
from shared.deliverability.schemas import SuppressionCreate
from shared.identity.refusals import RefusalLog, audit_refusal
from shared.queue.port import QueueMessage, QueueSender

log = logging.getLogger("asep.crm.webhooks")

CRM_EVENTS_QUEUE = "crm-events"
PROVIDER = "hubspot"
WEBHOOK_ACTOR = Actor(type=ActorType.SYSTEM, id="hubspot-webhook", display="HubSpot")
# HubSpot decodes exactly these escapes in the URI before signing.
_URI_ESCAPES = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
OPT_OUT_PROPERTY = "hs_email_optout"

webhook_refusals = RefusalLog(audit_sink=audit_refusal)


class WebhookRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signing_uri(url: str) -> str:
    for escaped, plain in _URI_ESCAPES.items():
        url = url.replace(escaped, plain).replace(escaped.lower(), plain)
    return url


def sign_v3(secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    source = method.upper().encode() + signing_uri(url).encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), source, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_v3(
    secret: str,
    method: str,
    url: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    *,
    max_age_seconds: int = 300,
    now_ms: int | None = None,
) -> None:
    if not signature or not timestamp:
        raise WebhookRefused("hubspot_webhook_unsigned")
    try:
        sent_ms = int(timestamp)
    except ValueError as exc:
        raise WebhookRefused("hubspot_webhook_malformed") from exc
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(now - sent_ms) > max_age_seconds * 1000:
        raise WebhookRefused("hubspot_webhook_stale")
    expected = sign_v3(secret, method, url, body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise WebhookRefused("hubspot_webhook_signature")


@dataclass(frozen=True)
class IntakeResult:
    accepted: int
    duplicates: int
    unknown_portals: int


def _events(body: bytes) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise WebhookRefused("hubspot_webhook_malformed") from exc
    if isinstance(parsed, dict):
        parsed = [parsed]
    if not isinstance(parsed, list) or not all(
        isinstance(e, dict) and "eventId" in e and "portalId" in e and "subscriptionType" in e
        for e in parsed
    ):
        raise WebhookRefused("hubspot_webhook_malformed")
    return parsed


def _record_once(uow: TenantUnitOfWork, event_id: str, **values: Any) -> bool:
    """Store a crm_webhook_events row unless its (tenant, provider, event_id) is already
    there; True when this call stored it."""
    inserted = uow.execute(
        insert(CrmWebhookEvent)
        .values(
            id=uuid.uuid4(),
            tenant_id=uow.tenant_id,
            provider=PROVIDER,
            event_id=event_id,
            **values,
        )
        .on_conflict_do_nothing(
            index_elements=[
                CrmWebhookEvent.tenant_id,
                CrmWebhookEvent.provider,
                CrmWebhookEvent.event_id,
            ]
        )
        .returning(CrmWebhookEvent.id)
    ).scalar_one_or_none()
    return inserted is not None


def _replayed(uow: TenantUnitOfWork, signature: str) -> bool:
    return not _record_once(
        uow,
        hashlib.sha256(signature.encode()).hexdigest(),
        subscription_type="request.signature",
        processed_at=datetime.now(UTC),
        outcome="request",
    )


def accept(
    body: bytes,
    *,
    method: str,
    url: str,
    signature: str | None,
    timestamp: str | None,
    secret: str,
    queue: QueueSender,
    max_age_seconds: int = 300,
) -> IntakeResult:
    """Verify and queue one webhook request. Raises WebhookRefused (already recorded)."""
    try:
        verify_v3(secret, method, url, body, signature, timestamp, max_age_seconds=max_age_seconds)
        events = _events(body)
    except WebhookRefused as refused:
        webhook_refusals.record(refused.reason, None)
        raise
    assert signature is not None
    by_portal: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_portal[str(event["portalId"])].append(event)
    with directory_unit_of_work() as duow:
        tenants = {p: resolve_tenant(duow, RouteKind.HUBSPOT_PORTAL, p) for p in by_portal}
    accepted = duplicates = unknown = 0
    for portal, portal_events in by_portal.items():
        tenant_id = tenants[portal]
        if tenant_id is None:
            unknown += len(portal_events)
            continue
        with tenant_unit_of_work(tenant_id) as uow:
            if _replayed(uow, signature):
                webhook_refusals.record("hubspot_webhook_replay", tenant_id)
                raise WebhookRefused("hubspot_webhook_replay")
            for event in portal_events:
                event_id = str(event["eventId"])
                if not _record_once(
                    uow,
                    event_id,
                    subscription_type=str(event["subscriptionType"])[:64],
                    object_id=str(event.get("objectId", ""))[:64] or None,
                ):
                    duplicates += 1
                    continue
                # Sent before commit: a failed send rolls the dedupe row back and HubSpot
                # retries; a failed commit after a send is caught by processing's dedupe.
                queue.send(
                    CRM_EVENTS_QUEUE,
                    QueueMessage(
                        body=json.dumps({"tenant_id": str(tenant_id), "event": event}).encode(),
                        message_id=f"hubspot:{portal}:{event_id}",
                        subject=str(event["subscriptionType"]),
                    ),
                )
                accepted += 1
    return IntakeResult(accepted, duplicates, unknown)


# -- processing (queue-triggered) ----------------------------------------------------------


def _contact_email(uow: TenantUnitOfWork, hubspot_id: str) -> str | None:
    internal_id = external_to_internal(uow, "contact", hubspot_id)
    if internal_id is None:
        return None
    contact = uow.get(CrmObject, internal_id)
    email = contact.data.get("email") if contact is not None else None
    return str(email).lower() if email else None


def _suppress_deleted(uow: TenantUnitOfWork, email: str) -> None:
    try:
        suppression.add_suppression(
            uow,
            SuppressionCreate(value=email, reason="manual", note="Contact deleted in HubSpot"),
            WEBHOOK_ACTOR,
        )
    except suppression.AlreadySuppressed:
        return


def _deal_stage(uow: TenantUnitOfWork, hubspot_id: str, stage: str) -> str:
    internal_id = external_to_internal(uow, "deal", hubspot_id)
    deal = uow.get(CrmObject, internal_id) if internal_id else None
    if deal is None:
        return "unknown_deal"
    if deal.data.get("stage_id") == stage:
        return "unchanged"
    previous = deal.data.get("stage_id")
    deal.data = {**deal.data, "stage_id": stage}
    uow.flush()
    AuditChain.append(
        uow,
        AuditEventType.DEAL_UPDATED,
        WEBHOOK_ACTOR,
        {"deal_id": str(deal.id), "from_stage": previous, "to_stage": stage, "origin": "hubspot"},
    )
    return "deal_stage_updated"


def _apply(uow: TenantUnitOfWork, event: dict[str, Any]) -> str:
    kind = str(event.get("subscriptionType"))
    object_id = str(event.get("objectId", ""))
    if kind in ("contact.deletion", "contact.privacyDeletion"):
        email = _contact_email(uow, object_id)
        if email is None:
            return "unknown_contact"
        _suppress_deleted(uow, email)
        return "suppressed"
    if kind == "contact.propertyChange" and event.get("propertyName") == OPT_OUT_PROPERTY:
        if str(event.get("propertyValue")).lower() != "true":
            return "ignored"
        email = _contact_email(uow, object_id)
        if email is None:
            return "unknown_contact"
        suppression.unsubscribe(uow, email, WEBHOOK_ACTOR)
        return "unsubscribed"
    if kind == "deal.propertyChange" and event.get("propertyName") == "dealstage":
        return _deal_stage(uow, object_id, str(event.get("propertyValue")))
    return "ignored"


def process_message(body: bytes) -> str:
    """One queued event, applied at most once (the event row is locked and marked)."""
    message = json.loads(body)
    tenant_id = uuid.UUID(message["tenant_id"])
    event: dict[str, Any] = message["event"]
    event_id = str(event["eventId"])
    with tenant_unit_of_work(tenant_id) as uow:
        # Normally stored at intake; stored here when intake sent the message but its commit failed.
        _record_once(
            uow,
            event_id,
            subscription_type=str(event.get("subscriptionType"))[:64],
            object_id=str(event.get("objectId", ""))[:64] or None,
        )
        row = uow.session.scalars(
            uow.scoped(CrmWebhookEvent)
            .where(CrmWebhookEvent.provider == PROVIDER, CrmWebhookEvent.event_id == event_id)
            .with_for_update()
        ).one()
        if row.processed_at is not None:
            return "duplicate"
        outcome = _apply(uow, event)
        uow.execute(
            update(CrmWebhookEvent)
            .where(CrmWebhookEvent.tenant_id == tenant_id, CrmWebhookEvent.id == row.id)
            .values(processed_at=datetime.now(UTC), outcome=outcome)
        )
        return outcome

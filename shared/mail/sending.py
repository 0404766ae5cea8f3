"""Effectively-once send: three steps between committed states (ARCHITECTURE.md §6).

1. `record_send_intent(uow, ...)`: in the caller's transaction, store the fully built message
   (our Message-ID, the exact bytes) under an idempotency key unique per tenant. Recording the
   same key again returns the intent already there.
2. `deliver(tenant_id, intent_id)`: claim the intent (commit), call the provider outside any
   transaction, commit what came back. A 5xx, a timeout or an unknown outcome leaves the
   intent `unknown`; a crash between claim and receipt leaves it `sending`, which becomes
   `unknown` when the claim's lease runs out.
3. `reconcile(tenant_id, intent_id)`: ask the provider's sent items for the Message-ID. Found:
   sent. Not found: the intent may be delivered again, with the same bytes and Message-ID.

`deliver` never calls the provider for an `unknown` intent, so nothing is resent before the
outcome of the previous attempt is known. Every step returns a `DeliveryOutcome` naming the
next action and how long to wait for it; an orchestration drives it with durable timers.
See docs/adr/0006-effectively-once-send.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from shared.audit.schemas import Actor, ActorType, AuditEventType
from shared.audit.service import AuditChain
from shared.campaigns.orm import Campaign
from shared.db.unit_of_work import TenantUnitOfWork, tenant_unit_of_work
from shared.deliverability.model import InvalidAddress, normalize_address
from shared.deliverability.orm import Mailbox as MailboxRow
from shared.deliverability.service import MailboxNotFound
from shared.deliverability.unsubscribe import unsubscribe_url
from shared.errors import NotFound, ValidationFailed
from shared.identity.orm import Tenant
from shared.mail.factory import MailboxRef, MailboxResolver, MailProviderNotAvailable, mailbox_for
from shared.mail.mime import Compliance, MessageContent, Thread, build_message, new_message_id
from shared.mail.orm import InboundMail, SendIntent
from shared.mail.port import (
    OutboundEmail,
    OutcomeUnknown,
    ProviderRejected,
    ProviderThrottled,
    ProviderUnavailable,
    SendReceipt,
    SentRecord,
    utc_now,
)
from shared.mail.schemas import (
    DeliveryOutcome,
    NextAction,
    RecordedIntent,
    SendIntentCreate,
    SendIntentRead,
    SendStatus,
)

Clock = Callable[[], datetime]

SENDER = Actor(type=ActorType.SYSTEM, id="mail.sending", display="Mail sending")


@dataclass(frozen=True)
class SendLimits:
    # Provider calls before an intent is held; a 429 counts, since it is a try that failed.
    max_attempts: int = 8
    # Failed sent-items lookups before an unknown outcome is held for a person to resolve.
    max_reconcile_attempts: int = 10
    # How long a claim protects an in-flight call. Must exceed the adapters' HTTP timeout, or
    # a slow call could be taken for a crashed one and reconciled while it is still running.
    lease_seconds: float = 120.0
    reconcile_backoff_seconds: float = 5.0


DEFAULT_LIMITS = SendLimits()


class SendIntentNotFound(NotFound):
    code = "send_intent_not_found"
    title = "Send intent not found"


class MissingPostalAddress(ValidationFailed):
    """CAN-SPAM: no commercial message without the sender's physical postal address."""

    code = "missing_postal_address"
    title = "Missing postal address"


def list_unsubscribe_url(tenant_id: uuid.UUID, recipient: str) -> str:
    """The one call site for the signed one-click link (deliverability owns the tokens)."""
    return unsubscribe_url(tenant_id, recipient)


def _read(intent: SendIntent) -> SendIntentRead:
    return SendIntentRead.model_validate(intent)


def intent_by_key(uow: TenantUnitOfWork, key: str) -> SendIntent | None:
    return uow.session.scalars(
        uow.scoped(SendIntent).where(SendIntent.idempotency_key == key)
    ).one_or_none()


def _tenant_settings(uow: TenantUnitOfWork) -> dict[str, Any]:
    tenant = uow.session.get(Tenant, uow.tenant_id)
    return dict(tenant.settings) if tenant is not None else {}


def is_draft_only(uow: TenantUnitOfWork, campaign_id: uuid.UUID | None) -> bool:
    """Draft-only mode, set in the tenant's or the campaign's settings."""
    if _tenant_settings(uow).get("draft_only"):
        return True
    if campaign_id is None:
        return False
    campaign = uow.get(Campaign, campaign_id)
    return bool(campaign is not None and campaign.settings.get("draft_only"))


def record_send_intent(
    uow: TenantUnitOfWork, request: SendIntentCreate, *, clock: Clock = utc_now
) -> RecordedIntent:
    existing = intent_by_key(uow, request.idempotency_key)
    if existing is not None:
        return RecordedIntent(intent=_read(existing), created=False)
    mailbox = uow.get(MailboxRow, request.mailbox_id)
    if mailbox is None:
        raise MailboxNotFound(f"Mailbox {request.mailbox_id} does not exist.")
    try:
        recipient = normalize_address(request.recipient)
    except InvalidAddress as exc:
        raise ValidationFailed(f"recipient: {exc}") from exc
    settings = _tenant_settings(uow)
    postal_address = str(settings.get("postal_address") or "").strip()
    if not postal_address:
        raise MissingPostalAddress(
            "Set the tenant's postal_address: every message carries it in its footer."
        )
    thread = None
    if request.reply_to_intent_id is not None:
        previous = uow.get(SendIntent, request.reply_to_intent_id)
        if previous is None:
            raise SendIntentNotFound(f"Send intent {request.reply_to_intent_id} does not exist.")
        thread = Thread(previous.message_id, tuple(previous.references))
    elif request.reply_to_inbound_id is not None:
        inbound = uow.get(InboundMail, request.reply_to_inbound_id)
        if inbound is None:
            raise NotFound(f"Inbound message {request.reply_to_inbound_id} does not exist.")
        if inbound.message_id:
            thread = Thread(inbound.message_id, tuple(inbound.references))
    message_id = new_message_id(mailbox.address)
    raw = build_message(
        message_id=message_id,
        date=clock(),
        sender=mailbox.address,
        sender_name=request.sender_name,
        recipient=recipient,
        recipient_name=request.recipient_name,
        content=MessageContent(request.subject, request.text, request.html),
        compliance=Compliance(
            postal_address=postal_address,
            unsubscribe_url=list_unsubscribe_url(uow.tenant_id, recipient),
            unsubscribe_mailto=settings.get("unsubscribe_mailto") or None,
        ),
        thread=thread,
    )
    draft_only = is_draft_only(uow, request.campaign_id)
    inserted = uow.execute(
        insert(SendIntent)
        .values(
            id=uuid.uuid4(),
            tenant_id=uow.tenant_id,
            idempotency_key=request.idempotency_key,
            mailbox_id=mailbox.id,
            campaign_id=request.campaign_id,
            prospect_id=request.prospect_id,
            step_id=request.step_id,
            recipient=recipient,
            subject=request.subject,
            message_id=message_id,
            in_reply_to=thread.in_reply_to if thread else None,
            references=list(thread.reference_chain()) if thread else [],
            raw_message=raw,
            status=SendStatus.DRAFT if draft_only else SendStatus.PENDING,
            attempts=0,
            reconcile_attempts=0,
            correlation_id=request.correlation_id or request.idempotency_key,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"])
        .returning(SendIntent.id)
    ).scalar_one_or_none()
    intent = intent_by_key(uow, request.idempotency_key)
    assert intent is not None
    if inserted is not None and draft_only:
        _audit(uow, AuditEventType.SEND_DRAFTED, intent, {"reason": "draft_only"})
    return RecordedIntent(intent=_read(intent), created=inserted is not None)


def _lock(uow: TenantUnitOfWork, intent_id: uuid.UUID) -> SendIntent:
    intent = uow.session.scalars(
        uow.scoped(SendIntent).where(SendIntent.id == intent_id).with_for_update()
    ).one_or_none()
    if intent is None:
        raise SendIntentNotFound(f"Send intent {intent_id} does not exist.")
    return intent


def _audit(
    uow: TenantUnitOfWork,
    event_type: AuditEventType,
    intent: SendIntent,
    extra: dict[str, Any] | None = None,
) -> None:
    payload: dict[str, Any] = {
        "intent_id": str(intent.id),
        "message_id": intent.message_id,
        "mailbox_id": str(intent.mailbox_id),
        "campaign_id": str(intent.campaign_id) if intent.campaign_id else None,
        "prospect_id": str(intent.prospect_id) if intent.prospect_id else None,
        "step_id": intent.step_id,
        "attempt": intent.attempts,
    }
    payload.update(extra or {})
    AuditChain.append(uow, event_type, SENDER, payload, correlation_id=intent.correlation_id)


def _seconds_until(moment: datetime | None, now: datetime) -> float | None:
    if moment is None or moment <= now:
        return None
    return (moment - now).total_seconds()


def _outcome(intent: SendIntent, now: datetime, limits: SendLimits) -> DeliveryOutcome:
    status = SendStatus(intent.status)
    wait: float | None = None
    match status:
        case SendStatus.SENT | SendStatus.HELD | SendStatus.DRAFT:
            action = NextAction.NONE
        case SendStatus.UNKNOWN:
            action = NextAction.RECONCILE
        case SendStatus.PENDING:
            action = NextAction.DELIVER
            wait = _seconds_until(intent.next_attempt_at, now)
        case SendStatus.SENDING:
            action = NextAction.DELIVER
            started = intent.attempt_started_at or now
            wait = _seconds_until(started + timedelta(seconds=limits.lease_seconds), now)
    return DeliveryOutcome(
        intent_id=intent.id,
        message_id=intent.message_id,
        status=status,
        next_action=action,
        retry_after_seconds=wait,
        reason=intent.status_reason,
    )


def _hold(uow: TenantUnitOfWork, intent: SendIntent, reason: str) -> None:
    intent.status = SendStatus.HELD
    intent.status_reason = reason
    _audit(uow, AuditEventType.SEND_FAILED, intent, {"outcome": "held", "reason": reason})


def _mark_unknown(uow: TenantUnitOfWork, intent: SendIntent, since: datetime, detail: str) -> None:
    intent.status = SendStatus.UNKNOWN
    intent.unclear_since = since
    intent.status_reason = detail
    _audit(uow, AuditEventType.SEND_FAILED, intent, {"outcome": "unknown", "detail": detail})


def _expire_lease(
    uow: TenantUnitOfWork, intent: SendIntent, now: datetime, limits: SendLimits
) -> None:
    """A claim whose deliver call never reported back (a crash): its outcome is unknown."""
    started = intent.attempt_started_at or now
    if (
        intent.status == SendStatus.SENDING
        and started + timedelta(seconds=limits.lease_seconds) <= now
    ):
        _mark_unknown(uow, intent, started, "the deliver call did not report back")


def _mark_sent(
    uow: TenantUnitOfWork, intent: SendIntent, receipt: SendReceipt | SentRecord, via: str
) -> None:
    if intent.status == SendStatus.SENT:
        return
    intent.status = SendStatus.SENT
    intent.status_reason = None
    intent.sent_at = receipt.accepted_at if isinstance(receipt, SendReceipt) else receipt.sent_at
    intent.provider_message_id = receipt.provider_message_id
    intent.provider_thread_id = receipt.provider_thread_id
    _audit(uow, AuditEventType.SEND_SUCCEEDED, intent, {"via": via})


@dataclass(frozen=True)
class _Claim:
    attempt: int
    mailbox: MailboxRef
    message: OutboundEmail


def _claim(
    uow: TenantUnitOfWork,
    intent: SendIntent,
    now: datetime,
    limits: SendLimits,
    mailboxes: MailboxResolver,
) -> _Claim | DeliveryOutcome:
    _expire_lease(uow, intent, now, limits)
    if intent.status != SendStatus.PENDING:
        return _outcome(intent, now, limits)
    if is_draft_only(uow, intent.campaign_id):
        intent.status = SendStatus.DRAFT
        _audit(uow, AuditEventType.SEND_DRAFTED, intent, {"reason": "draft_only"})
        return _outcome(intent, now, limits)
    if _seconds_until(intent.next_attempt_at, now) is not None:
        return _outcome(intent, now, limits)
    if intent.attempts >= limits.max_attempts:
        _hold(uow, intent, f"attempts_exhausted: {intent.attempts} provider calls failed")
        return _outcome(intent, now, limits)
    row = uow.get(MailboxRow, intent.mailbox_id)
    assert row is not None  # the foreign key restricts deleting a mailbox with intents
    ref = MailboxRef.of(row)
    try:
        mailboxes(uow.tenant_id, ref)
    except MailProviderNotAvailable as exc:
        _hold(uow, intent, f"provider_not_available: {exc.detail}")
        return _outcome(intent, now, limits)
    intent.status = SendStatus.SENDING
    intent.attempts += 1
    intent.attempt_started_at = now
    intent.next_attempt_at = None
    _audit(uow, AuditEventType.SEND_ATTEMPTED, intent)
    return _Claim(
        attempt=intent.attempts,
        mailbox=ref,
        message=OutboundEmail(
            message_id=intent.message_id,
            sender=row.address,
            recipients=(intent.recipient,),
            raw=intent.raw_message,
        ),
    )


def deliver(
    tenant_id: uuid.UUID,
    intent_id: uuid.UUID,
    *,
    mailboxes: MailboxResolver = mailbox_for,
    clock: Clock = utc_now,
    limits: SendLimits = DEFAULT_LIMITS,
) -> DeliveryOutcome:
    """Send a pending intent once. Call outside any transaction: it commits twice itself."""
    with tenant_unit_of_work(tenant_id) as uow:
        intent = _lock(uow, intent_id)
        claim = _claim(uow, intent, clock(), limits, mailboxes)
        if isinstance(claim, DeliveryOutcome):
            return claim
    provider = mailboxes(tenant_id, claim.mailbox)
    receipt: SendReceipt | None = None
    error: Exception | None = None
    try:
        receipt = provider.send(claim.message)
    except (ProviderThrottled, ProviderRejected, ProviderUnavailable, OutcomeUnknown) as exc:
        error = exc
    with tenant_unit_of_work(tenant_id) as uow:
        intent = _lock(uow, intent_id)
        now = clock()
        if receipt is not None:
            _mark_sent(uow, intent, receipt, "deliver")
        elif isinstance(error, ProviderUnavailable | OutcomeUnknown):
            # Whoever else touched the intent meanwhile, this attempt may have landed.
            if intent.status in (SendStatus.SENDING, SendStatus.PENDING) and (
                intent.status == SendStatus.PENDING or intent.attempts == claim.attempt
            ):
                _mark_unknown(uow, intent, intent.attempt_started_at or now, str(error))
        elif intent.status == SendStatus.SENDING and intent.attempts == claim.attempt:
            if isinstance(error, ProviderThrottled):
                intent.status = SendStatus.PENDING
                intent.next_attempt_at = now + timedelta(seconds=error.retry_after)
                _audit(
                    uow,
                    AuditEventType.SEND_FAILED,
                    intent,
                    {"outcome": "throttled", "retry_after_seconds": error.retry_after},
                )
                if intent.attempts >= limits.max_attempts:
                    _hold(uow, intent, f"attempts_exhausted: throttled {intent.attempts} times")
            elif isinstance(error, ProviderRejected):
                _hold(uow, intent, f"rejected: {error.reason}")
        outcome = _outcome(intent, now, limits)
    if outcome.status == SendStatus.UNKNOWN:
        outcome.retry_after_seconds = provider.sent_visibility_seconds or None
    return outcome


def reconcile(
    tenant_id: uuid.UUID,
    intent_id: uuid.UUID,
    *,
    mailboxes: MailboxResolver = mailbox_for,
    clock: Clock = utc_now,
    limits: SendLimits = DEFAULT_LIMITS,
) -> DeliveryOutcome:
    """Settle an unknown outcome from the provider's sent items, by Message-ID."""
    with tenant_unit_of_work(tenant_id) as uow:
        intent = _lock(uow, intent_id)
        now = clock()
        _expire_lease(uow, intent, now, limits)
        if intent.status != SendStatus.UNKNOWN:
            return _outcome(intent, now, limits)
        row = uow.get(MailboxRow, intent.mailbox_id)
        assert row is not None
        provider = mailboxes(tenant_id, MailboxRef.of(row))
        since = intent.unclear_since or now
        visible_at = since + timedelta(seconds=provider.sent_visibility_seconds)
        wait = _seconds_until(visible_at, now)
        if wait is not None:
            outcome = _outcome(intent, now, limits)
            outcome.retry_after_seconds = wait
            return outcome
        message_id = intent.message_id
    found: SentRecord | None = None
    error: Exception | None = None
    try:
        found = provider.find_sent(message_id)
    except (ProviderThrottled, ProviderRejected, ProviderUnavailable, OutcomeUnknown) as exc:
        error = exc
    with tenant_unit_of_work(tenant_id) as uow:
        intent = _lock(uow, intent_id)
        now = clock()
        if intent.status != SendStatus.UNKNOWN:
            return _outcome(intent, now, limits)
        if found is not None:
            _audit(uow, AuditEventType.SEND_RECONCILED, intent, {"found": True})
            _mark_sent(uow, intent, found, "reconcile")
        elif error is not None:
            intent.reconcile_attempts += 1
            if isinstance(error, ProviderRejected):
                _hold(uow, intent, f"outcome_unknown: sent items lookup refused ({error.reason})")
            elif intent.reconcile_attempts >= limits.max_reconcile_attempts:
                _hold(
                    uow,
                    intent,
                    f"outcome_unknown: sent items unreachable after "
                    f"{intent.reconcile_attempts} lookups",
                )
            else:
                outcome = _outcome(intent, now, limits)
                outcome.retry_after_seconds = (
                    error.retry_after
                    if isinstance(error, ProviderThrottled)
                    else limits.reconcile_backoff_seconds
                )
                return outcome
        else:
            _audit(uow, AuditEventType.SEND_RECONCILED, intent, {"found": False})
            intent.status = SendStatus.PENDING
            intent.status_reason = None
            intent.unclear_since = None
            intent.next_attempt_at = None
            if intent.attempts >= limits.max_attempts:
                _hold(uow, intent, f"attempts_exhausted: {intent.attempts} provider calls failed")
        return _outcome(intent, now, limits)


def intent_by_message_id(uow: TenantUnitOfWork, message_ids: list[str]) -> SendIntent | None:
    """The first of `message_ids` that is one of ours, for threading replies."""
    if not message_ids:
        return None
    rows = {
        row.message_id: row
        for row in uow.session.scalars(
            select(SendIntent).where(
                SendIntent.tenant_id == uow.tenant_id, SendIntent.message_id.in_(message_ids)
            )
        )
    }
    return next((rows[mid] for mid in message_ids if mid in rows), None)

"""Reply use cases: classify a stored inbound message once and act on the label; relabel.

`classify_inbound` runs in the caller's unit of work (an activity or the reply_to_deal
orchestration's first step) and does, in that one transaction: store the classification
(one row per inbound message; calling it again returns the stored one and repeats no
effect), raise the intent event on a positive reply, suppress on unsubscribe, hard bounce
and complaint, and refresh the mailbox's health on bounces and complaints. It never sends
anything, and it never raises on what the message contains.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select

from shared.audit.schemas import Actor, ActorType, AuditEventType
from shared.audit.service import AuditChain
from shared.db.unit_of_work import TenantUnitOfWork
from shared.deliverability import suppression
from shared.deliverability.model import InvalidAddress, normalize_address
from shared.deliverability.schemas import SuppressionCreate
from shared.deliverability.service import record_health
from shared.errors import ASEPError, NotFound
from shared.identity.orm import Tenant
from shared.llm.ledger import DbSpendLedger
from shared.llm.port import GenerationRequest, Task
from shared.llm.router import ModelRouter, TenantModelPolicy
from shared.mail.orm import InboundMail, SendIntent
from shared.pagination import decode_time_cursor, encode_time_cursor
from shared.replies import repository
from shared.replies.classifier import (
    HumanReplyModel,
    HumanVerdict,
    classify_raw,
    offline_model,
)
from shared.replies.model import effects, next_step
from shared.replies.orm import Reply, ReplyLabelRecord
from shared.replies.reduce import message_text, new_text
from shared.replies.schemas import (
    ClassifiedInbound,
    Evidence,
    IntentEventPage,
    IntentEventRead,
    ReplyClassification,
    ReplyLabel,
    ReplyLabelRequest,
    ReplyModelOutput,
    ReplyPage,
    ReplyRead,
    ReplyStatus,
)

log = logging.getLogger(__name__)

CLASSIFIER = Actor(type=ActorType.SYSTEM, id="replies.classifier", display="Reply classifier")
Clock = Callable[[], datetime]
# Bounce and complaint rates are judged over the last 30 days of sends, the window Google's
# Postmaster Tools reports spam rate over.
HEALTH_WINDOW = timedelta(days=30)
# More automatic replies than this to one touch is a loop (their responder answering ours or
# each other's); later ones are stored unclassified and cause nothing.
MAX_AUTO_REPLIES_PER_TOUCH = 3
CLASSIFY_INSTRUCTIONS = (
    "Classify the prospect's reply to a sales email. Labels: positive (interest, meeting "
    "request), neutral (question, referral, acknowledgement), objection (sub_label: timing, "
    "budget, competitor, no_need, authority, not_interested), unsubscribe, ooo, complaint. "
    "Give your confidence that the label is right, in [0, 1]."
)


def utc_now() -> datetime:
    return datetime.now(UTC)


class InboundNotFound(NotFound):
    code = "inbound_not_found"
    title = "Inbound message not found"


class ReplyNotFound(NotFound):
    code = "reply_not_found"
    title = "Reply not found"


class RouterReplyModel:
    """A tenant's hosted model through the router (Task.CLASSIFY_REPLY). Its confidence is
    the model's own and uncalibrated, which the evidence says; when the router cannot answer
    (budget, outage) the offline model answers instead."""

    def __init__(self, uow: TenantUnitOfWork, router: ModelRouter, policy: TenantModelPolicy):
        self._uow = uow
        self._router = router
        self._policy = policy
        self.version = "router:" + "+".join(policy.providers)

    def judge(self, text: str, subject: str) -> HumanVerdict:
        try:
            result = self._router.generate(
                self._uow.tenant_id,
                self._policy,
                GenerationRequest(
                    task=Task.CLASSIFY_REPLY,
                    output_schema=ReplyModelOutput,
                    instructions=CLASSIFY_INSTRUCTIONS,
                    context={"text": text, "subject": subject},
                    max_output_tokens=200,
                    temperature=0.0,
                ),
                DbSpendLedger(self._uow),
            )
        except ASEPError as exc:
            fallback = offline_model().judge(text, subject)
            return HumanVerdict(
                fallback.label,
                fallback.sub_label,
                fallback.confidence,
                fallback.source,
                [*fallback.signals, f"llm-fallback:{exc.code}"],
            )
        output = result.output
        calibrated = result.provider == "offline"
        return HumanVerdict(
            label=output.label,
            sub_label=output.sub_label,
            confidence=output.confidence,
            source=f"llm:{result.provider}:{result.model}",
            signals=[] if calibrated else ["confidence:self-reported"],
        )


def reply_model_for(uow: TenantUnitOfWork, router: ModelRouter | None) -> HumanReplyModel:
    """The offline model unless the tenant configured hosted providers and a router exists."""
    if router is None:
        return offline_model()
    tenant = uow.session.scalars(select(Tenant).where(Tenant.id == uow.tenant_id)).one()
    policy = TenantModelPolicy.from_settings(tenant.settings or {})
    if policy.providers == ("offline",):
        return offline_model()
    return RouterReplyModel(uow, router, policy)


def _safe_classify(raw: bytes, model: HumanReplyModel) -> ReplyClassification:
    try:
        return classify_raw(raw, model)
    except Exception as exc:  # a classifier bug must not stop the inbound pipeline
        log.exception("reply classification failed")
        return ReplyClassification(
            label=ReplyLabel.NEUTRAL,
            confidence=0.0,
            evidence=Evidence(source="none", signals=[f"error:{type(exc).__name__}"]),
            status=ReplyStatus.UNCLASSIFIABLE,
            reason=f"classifier error: {type(exc).__name__}",
            classifier_version=getattr(model, "version", "unknown"),
            recommendation="Unclassifiable (classifier error): a person should read it.",
        )


def _unclassifiable(result: ReplyClassification, reason: str) -> ReplyClassification:
    return result.model_copy(
        update={
            "status": ReplyStatus.UNCLASSIFIABLE,
            "reason": reason,
            "recommendation": f"Unclassifiable ({reason}): no action taken.",
        }
    )


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def classify_on_arrival(uow: TenantUnitOfWork, inbound_id: uuid.UUID) -> None:
    """Classify a message in the transaction that stores it, so suppression, intent events and
    health take effect with its arrival, in a savepoint: whatever goes wrong there, the message
    stays stored (and reply_to_deal's classify_reply tries again) instead of being lost."""
    try:
        with uow.session.begin_nested():
            classify_inbound(uow, inbound_id)
    except Exception:
        log.exception("classifying inbound message %s on arrival failed", inbound_id)


def classify_inbound(
    uow: TenantUnitOfWork,
    inbound_id: uuid.UUID,
    *,
    model: HumanReplyModel | None = None,
    router: ModelRouter | None = None,
    clock: Clock = utc_now,
) -> ClassifiedInbound:
    """Classify one stored inbound message and apply its effects, once."""
    existing = repository.reply_for_inbound(uow, inbound_id)
    if existing is not None:
        return _already(uow, existing)
    inbound = uow.get(InboundMail, inbound_id)
    if inbound is None:
        raise InboundNotFound(f"Inbound message {inbound_id} does not exist.")
    intent = uow.get(SendIntent, inbound.intent_id) if inbound.intent_id else None
    chosen = model or reply_model_for(uow, router)
    result = _safe_classify(inbound.raw or b"", chosen)
    if inbound.raw is None or not inbound.raw.strip():
        result = _unclassifiable(result, "empty message")
    if inbound.reason and "too_large" in inbound.reason:
        result.evidence.signals.append("too-large: read from the message's first megabyte")
    if (
        result.label is ReplyLabel.OOO
        and intent is not None
        and repository.automatic_replies_to(uow, intent.id) >= MAX_AUTO_REPLIES_PER_TOUCH
    ):
        result = _unclassifiable(result, "auto-reply loop: automatic replies keep arriving")
    correlation_id = intent.correlation_id if intent else None
    evidence = result.evidence.model_dump(mode="json")
    reply_id = repository.insert_reply(
        uow,
        {
            "inbound_id": inbound.id,
            "mailbox_id": inbound.mailbox_id,
            "intent_id": inbound.intent_id,
            "prospect_id": inbound.prospect_id,
            "campaign_id": inbound.campaign_id,
            "status": result.status.value,
            "label": result.label.value,
            "sub_label": result.sub_label,
            "confidence": result.confidence,
            "evidence": evidence,
            "reason": result.reason,
            "recommendation": result.recommendation,
            "classifier_version": result.classifier_version[:100],
            "reduced_text_sha256": _sha256(result.reduced_text),
            "correlation_id": correlation_id,
        },
    )
    if reply_id is None:  # classified concurrently: the first one stands
        stored = repository.reply_for_inbound(uow, inbound_id)
        assert stored is not None
        return _already(uow, stored)
    AuditChain.append(
        uow,
        AuditEventType.REPLY_CLASSIFIED,
        CLASSIFIER,
        {
            "reply_id": str(reply_id),
            "inbound_id": str(inbound.id),
            "prospect_id": str(inbound.prospect_id) if inbound.prospect_id else None,
            "campaign_id": str(inbound.campaign_id) if inbound.campaign_id else None,
            "status": result.status.value,
            "label": result.label.value,
            "sub_label": result.sub_label,
            "confidence": result.confidence,
            "source": result.evidence.source,
            "classifier_version": result.classifier_version,
            "reason": result.reason,
        },
        correlation_id=correlation_id,
    )
    outcome = ClassifiedInbound(reply=_read(uow, reply_id), created=True)
    if result.status is ReplyStatus.UNCLASSIFIABLE:
        return outcome
    effect = effects(result.label, result.sub_label)
    if effect.intent_event:
        outcome.intent_event_id = _raise_intent(uow, reply_id, inbound, result, correlation_id)
    if effect.suppress:
        outcome.suppressed = _suppress(uow, result, inbound, intent, correlation_id)
    if effect.counts_as_bounce or effect.counts_as_complaint:
        outcome.health_updated = refresh_mailbox_health(uow, inbound.mailbox_id, clock=clock)
    return outcome


def _already(uow: TenantUnitOfWork, reply: Reply) -> ClassifiedInbound:
    event = repository.intent_event_for_reply(uow, reply.id)
    return ClassifiedInbound(
        reply=ReplyRead.model_validate(reply),
        created=False,
        intent_event_id=event.id if event else None,
    )


def _read(uow: TenantUnitOfWork, reply_id: uuid.UUID) -> ReplyRead:
    reply = uow.get(Reply, reply_id)
    assert reply is not None
    return ReplyRead.model_validate(reply)


def _raise_intent(
    uow: TenantUnitOfWork,
    reply_id: uuid.UUID,
    inbound: InboundMail,
    result: ReplyClassification,
    correlation_id: str | None,
) -> uuid.UUID | None:
    evidence = result.evidence.model_dump(mode="json")
    event_id = repository.insert_intent_event(
        uow,
        {
            "reply_id": reply_id,
            "intent_id": inbound.intent_id,
            "prospect_id": inbound.prospect_id,
            "campaign_id": inbound.campaign_id,
            "confidence": result.confidence,
            "sub_label": result.sub_label,
            "evidence": evidence,
            "correlation_id": correlation_id,
        },
    )
    if event_id is None:
        return None
    # The excerpt is the prospect's words (personal data): the chain keeps its hash, the
    # erasable intent_events row keeps the text.
    AuditChain.append(
        uow,
        AuditEventType.INTENT_EVENT_CREATED,
        CLASSIFIER,
        {
            "intent_event_id": str(event_id),
            "reply_id": str(reply_id),
            "prospect_id": str(inbound.prospect_id) if inbound.prospect_id else None,
            "campaign_id": str(inbound.campaign_id) if inbound.campaign_id else None,
            "confidence": result.confidence,
            "sub_label": result.sub_label,
            "evidence": {
                "source": result.evidence.source,
                "signals": result.evidence.signals[:10],
                "excerpt_sha256": _sha256(result.evidence.excerpt),
            },
        },
        correlation_id=correlation_id,
    )
    return event_id


def _targets(
    result: ReplyClassification, inbound: InboundMail, intent: SendIntent | None
) -> list[str]:
    """Whom to suppress: the touch's recipient when the reply is threaded, otherwise the
    addresses the report names (bounce, ARF) or the sender (a person asking to stop)."""
    if intent is not None:
        candidates = [intent.recipient]
    elif result.label is ReplyLabel.UNSUBSCRIBE:
        candidates = [inbound.sender] if inbound.sender else []
    else:
        candidates = list(result.evidence.addresses)
        if not candidates and result.label is ReplyLabel.COMPLAINT and inbound.sender:
            candidates = [inbound.sender]
    normalized: list[str] = []
    for candidate in candidates:
        try:
            normalized.append(normalize_address(candidate))
        except InvalidAddress:
            continue
    return list(dict.fromkeys(normalized))[:20]


def _suppress(
    uow: TenantUnitOfWork,
    result: ReplyClassification,
    inbound: InboundMail,
    intent: SendIntent | None,
    correlation_id: str | None,
) -> list[str]:
    done: list[str] = []
    for address in _targets(result, inbound, intent):
        if result.label is ReplyLabel.UNSUBSCRIBE:
            suppression.unsubscribe(uow, address, CLASSIFIER, correlation_id=correlation_id)
        else:
            reason: Literal["bounce", "complaint"] = (
                "bounce" if result.label is ReplyLabel.BOUNCE else "complaint"
            )
            note = f"reply {result.label.value}/{result.sub_label or '-'}"
            if suppression.check(uow, address).suppressed:
                done.append(_sha256(address))
                continue
            try:
                suppression.add_suppression(
                    uow,
                    SuppressionCreate(value=address, reason=reason, note=note),
                    CLASSIFIER,
                    correlation_id=correlation_id,
                )
            except (suppression.AlreadySuppressed, suppression.InvalidSuppression):
                continue
        done.append(_sha256(address))
    return done


def refresh_mailbox_health(
    uow: TenantUnitOfWork, mailbox_id: uuid.UUID, *, clock: Clock = utc_now
) -> bool:
    """Recompute the mailbox's health from its sends, bounces and complaints in the window."""
    now = clock()
    sent, bounces, complaints = repository.mailbox_counts(uow, mailbox_id, now - HEALTH_WINDOW)
    try:
        record_health(
            uow, mailbox_id, sent=sent, bounces=bounces, complaints=complaints, clock=clock
        )
    except NotFound:
        return False
    return True


def relabel(
    uow: TenantUnitOfWork, reply_id: uuid.UUID, request: ReplyLabelRequest, actor: Actor
) -> ReplyRead:
    """A person's label: stored with the text as training data and audited. A label that
    calls for suppression (unsubscribe, complaint, hard bounce) suppresses at once; nothing
    is ever un-suppressed by relabelling."""
    reply = uow.get(Reply, reply_id)
    if reply is None:
        raise ReplyNotFound(f"Reply {reply_id} does not exist.")
    inbound = uow.get(InboundMail, reply.inbound_id)
    reduced = new_text(message_text(inbound.raw or b"").body) if inbound else ""
    previous = reply.human_label or reply.label
    uow.add(
        ReplyLabelRecord(
            reply_id=reply.id,
            label=request.label.value,
            sub_label=request.sub_label,
            previous_label=previous,
            note=request.note,
            reduced_text=reduced,
            labelled_by=actor.id,
        )
    )
    reply.human_label = request.label.value
    reply.human_sub_label = request.sub_label
    reply.labelled_by = actor.id
    reply.labelled_at = utc_now()
    reply.recommendation = next_step(request.label, request.sub_label, 1.0)
    uow.flush()
    AuditChain.append(
        uow,
        AuditEventType.REPLY_RELABELLED,
        actor,
        {
            "reply_id": str(reply.id),
            "label": request.label.value,
            "sub_label": request.sub_label,
            "previous_label": previous,
            "model_label": reply.label,
        },
        correlation_id=reply.correlation_id,
    )
    if inbound is not None and effects(request.label, request.sub_label).suppress:
        intent = uow.get(SendIntent, inbound.intent_id) if inbound.intent_id else None
        human = ReplyClassification(
            label=request.label,
            sub_label=request.sub_label,
            confidence=1.0,
            evidence=Evidence(**reply.evidence) if reply.evidence else Evidence(source="human"),
            classifier_version="human",
        )
        _suppress(uow, human, inbound, intent, reply.correlation_id)
    return ReplyRead.model_validate(reply)


def _after(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    return decode_time_cursor(cursor) if cursor else None


def list_replies(
    uow: TenantUnitOfWork,
    *,
    cursor: str | None = None,
    limit: int = 100,
    label: ReplyLabel | None = None,
    prospect_id: uuid.UUID | None = None,
) -> ReplyPage:
    rows = repository.page_replies(
        uow, after=_after(cursor), limit=limit + 1, label=label, prospect_id=prospect_id
    )
    items = [ReplyRead.model_validate(row) for row in rows[:limit]]
    more = len(rows) > limit
    next_cursor = encode_time_cursor(items[-1].created_at, items[-1].id) if more else None
    return ReplyPage(items=items, next_cursor=next_cursor)


def list_intent_events(
    uow: TenantUnitOfWork, *, cursor: str | None = None, limit: int = 100
) -> IntentEventPage:
    rows = repository.page_intent_events(uow, after=_after(cursor), limit=limit + 1)
    items = [IntentEventRead.model_validate(row) for row in rows[:limit]]
    more = len(rows) > limit
    next_cursor = encode_time_cursor(items[-1].created_at, items[-1].id) if more else None
    return IntentEventPage(items=items, next_cursor=next_cursor)


def policy_reply_input(reply: ReplyRead, touch_number: int = 0) -> dict[str, Any]:
    """The `reply` section of a PolicyInput for deal gating: a person's label wins."""
    label = reply.human_label or reply.label
    return {
        "classification": label.value,
        "sub_label": (reply.human_sub_label if reply.human_label else reply.sub_label) or "",
        "confidence": 1.0 if reply.human_label else reply.confidence,
        "touch_number": touch_number,
    }

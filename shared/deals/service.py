"""Deal use cases: gate a reply through the policy engine, create or update the deal, ask
for approval, and record the replies that made no deal.

Deals come only from replies or meetings (ARCHITECTURE.md §6): a positive reply to any
touch, the first included, may create one; sending never does. Every outcome is written to
deals_shadow and audited with the policy decision that led to it, in the caller's unit of
work; CRM writes go through the CRM port of the tenant's provider.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from shared.approvals.schemas import ApprovalRequest
from shared.approvals.service import request_approval
from shared.audit.schemas import Actor, ActorType, AuditEventType
from shared.audit.service import AuditChain
from shared.crm.integrations import PROVIDER as HUBSPOT
from shared.crm.integrations import stage_mapping
from shared.crm.port import (
    CompanyUpsert,
    ContactUpsert,
    CrmAdapter,
    DealCreate,
    EngagementLog,
    EngagementType,
    TaskCreate,
)
from shared.crm.service import audit_crm_writes, crm_for
from shared.db.unit_of_work import TenantUnitOfWork
from shared.deals import repository
from shared.deals.model import (
    NEXT_STEP_DUE,
    company_domain_of,
    deal_name,
    dedupe_window_days,
    gate_outcome,
    window_start,
)
from shared.deals.orm import DealShadow
from shared.deals.schemas import (
    DealGateResult,
    DealPage,
    DealRead,
    DealStage,
    DealStatus,
    GateOutcome,
    MeetingDeal,
)
from shared.errors import NotFound
from shared.identity.orm import Tenant
from shared.mail.orm import InboundMail, SendIntent
from shared.pagination import decode_time_cursor, encode_time_cursor
from shared.policy.model import matched_rules
from shared.policy.schemas import (
    ActionInput,
    ActionType,
    ActorInput,
    DealInput,
    Decision,
    Effect,
    PolicyInput,
    ReplyInput,
    Stage,
    TenantInput,
)
from shared.policy.service import decide
from shared.prospects.orm import Company, Prospect
from shared.replies.orm import Reply
from shared.replies.schemas import ReplyRead
from shared.replies.service import ReplyNotFound, policy_reply_input

DEALS_ACTOR = Actor(type=ActorType.SYSTEM, id="deals.gate", display="Deal gating")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Party:
    """Whom a reply's deal is about: the prospect (when known), its address and company."""

    def __init__(self, uow: TenantUnitOfWork, reply: Reply) -> None:
        intent = uow.get(SendIntent, reply.intent_id) if reply.intent_id else None
        inbound = uow.get(InboundMail, reply.inbound_id)
        prospect = uow.get(Prospect, reply.prospect_id) if reply.prospect_id else None
        company = (
            uow.get(Company, prospect.company_id) if prospect and prospect.company_id else None
        )
        self.intent = intent
        self.prospect = prospect
        self.company = company
        self.email = (
            (prospect.email if prospect else None)
            or (intent.recipient if intent else None)
            or (inbound.sender if inbound else None)
            or ""
        )
        # Dedupe by company only for a known company: addresses at gmail.com are not a company.
        self.company_domain = company.domain.lower() if company else None


def _reply(uow: TenantUnitOfWork, reply_id: uuid.UUID) -> Reply:
    reply = uow.get(Reply, reply_id)
    if reply is None:
        raise ReplyNotFound(f"Reply {reply_id} does not exist.")
    return reply


def _tenant_settings(uow: TenantUnitOfWork) -> dict[str, Any]:
    settings = uow.session.scalar(select(Tenant.settings).where(Tenant.id == uow.tenant_id))
    return dict(settings or {})


def gate_deal(
    uow: TenantUnitOfWork, reply_id: uuid.UUID, *, clock: Clock = utc_now
) -> DealGateResult:
    """Decide, through the tenant's policy pack at the reply stage, what this reply does to
    deals: create one (auto or after approval), update the one that exists in the dedupe
    window, or nothing (recorded as blocked and audited)."""
    reply = _reply(uow, reply_id)
    party = _Party(uow, reply)
    window = dedupe_window_days(_tenant_settings(uow))
    existing = repository.deal_in_window(
        uow,
        prospect_id=reply.prospect_id,
        company_domain=party.company_domain,
        since=window_start(clock(), window),
    )
    touch = repository.touches_before(uow, party.intent) if party.intent else 0
    policy_input = PolicyInput(
        actor=ActorInput(type=DEALS_ACTOR.type.value, id=DEALS_ACTOR.id),
        action=ActionInput(
            type=ActionType.DEAL_CREATE,
            stage=Stage.REPLY,
            campaign_id=str(reply.campaign_id or ""),
            touch_number=touch,
            is_first_touch=touch == 1,
        ),
        tenant=TenantInput(id=str(uow.tenant_id), dedupe_window_days=window),
        reply=ReplyInput(**policy_reply_input(ReplyRead.model_validate(reply), touch)),
        deal=DealInput(
            existing_deal_in_window=existing is not None,
            existing_deal_id=str(existing.id) if existing else "",
            source="reply",
        ),
    )
    decision = decide(uow, policy_input, DEALS_ACTOR, correlation_id=reply.correlation_id)
    outcome = gate_outcome(decision, existing is not None)
    result = DealGateResult(
        reply_id=reply.id,
        outcome=outcome,
        label=policy_input.reply.classification,
        confidence=policy_input.reply.confidence,
        touch_number=touch,
        prospect_id=reply.prospect_id,
        campaign_id=reply.campaign_id,
        company_domain=party.company_domain,
        existing_deal_id=existing.id if existing else None,
        correlation_id=reply.correlation_id,
        decision_id=decision.decision_id,
        pack_id=decision.pack_id,
        pack_version=decision.pack_version,
        input_hash=decision.input_hash,
        matched_rules=matched_rules(decision),
        reasons=[reason.text for reason in decision.reasons],
    )
    if outcome is GateOutcome.NONE:
        _record_not_created(uow, result, DealStatus.BLOCKED, _denials(decision))
    return result


def _denials(decision: Decision) -> str:
    texts = [r.text for r in decision.reasons if r.effect in (Effect.DENY_DEAL, Effect.DENY)]
    return "; ".join(texts) or "no deal rule matched"


def _record_not_created(
    uow: TenantUnitOfWork, gate: DealGateResult, status: DealStatus, reason: str
) -> DealShadow:
    """A reply that made no deal (blocked, or held after its approval): recorded once,
    audited DEAL_CREATION_BLOCKED with the decision trace."""
    row = repository.for_reply(uow, gate.reply_id)
    if row is not None and row.status != DealStatus.PENDING_APPROVAL.value:
        return row  # decided before (a retried activity or a restarted orchestration)
    if row is None:
        row = uow.add(_shadow(gate, status))
    row.status = status.value
    row.reason = reason[:2000]
    uow.flush()
    AuditChain.append(
        uow,
        AuditEventType.DEAL_CREATION_BLOCKED,
        DEALS_ACTOR,
        {
            "deal_shadow_id": str(row.id),
            "reply_id": str(gate.reply_id),
            "prospect_id": str(gate.prospect_id) if gate.prospect_id else None,
            "campaign_id": str(gate.campaign_id) if gate.campaign_id else None,
            "status": status.value,
            "reason": reason[:1000],
            "label": gate.label,
            "confidence": gate.confidence,
            "approval_id": str(row.approval_id) if row.approval_id else None,
            "decision_trace": gate.trace(),
        },
        correlation_id=gate.correlation_id,
    )
    return row


def _shadow(gate: DealGateResult, status: DealStatus) -> DealShadow:
    return DealShadow(
        id=uuid.uuid4(),
        prospect_id=gate.prospect_id,
        company_domain=gate.company_domain,
        campaign_id=gate.campaign_id,
        stage=DealStage.POSITIVE_REPLY.value,
        source="reply",
        status=status.value,
        confidence=gate.confidence,
        source_reply_id=gate.reply_id,
        last_reply_id=gate.reply_id,
        decision_id=gate.decision_id or None,
        correlation_id=gate.correlation_id,
    )


def request_deal_approval(
    uow: TenantUnitOfWork, gate: DealGateResult, orchestration_instance_id: str
) -> uuid.UUID:
    """ "Create Deal?" for a medium-confidence positive reply; the decision reaches the
    orchestration as its `approval` event. Asking again returns the first request."""
    reply = _reply(uow, gate.reply_id)
    approval = request_approval(
        uow,
        ApprovalRequest(
            action_kind="deal",
            action_id=str(gate.reply_id),
            campaign_id=gate.campaign_id,
            prospect_id=gate.prospect_id,
            orchestration_instance_id=orchestration_instance_id,
            summary=f"Create Deal? Positive reply (confidence {gate.confidence:.2f}).",
            preview={
                "label": gate.label,
                "confidence": gate.confidence,
                "recommendation": reply.recommendation,
                "touch_number": gate.touch_number,
            },
            evidence=[reply.evidence] if reply.evidence else [],
            decision_trace=gate.trace(),
        ),
        DEALS_ACTOR,
    )
    row = repository.for_reply(uow, gate.reply_id)
    if row is None:
        row = uow.add(_shadow(gate, DealStatus.PENDING_APPROVAL))
    if row.status == DealStatus.PENDING_APPROVAL.value:
        row.approval_id = approval.id
    uow.flush()
    return approval.id


def hold_deal(uow: TenantUnitOfWork, gate: DealGateResult, reason: str) -> DealRead:
    """The approval did not pass (rejected, expired, timed out): no deal, held with why."""
    row = repository.for_reply(uow, gate.reply_id)
    if row is not None and row.status == DealStatus.CREATED.value:
        return DealRead.model_validate(row)
    return DealRead.model_validate(_record_not_created(uow, gate, DealStatus.HELD, reason))


def create_or_update_deal(
    uow: TenantUnitOfWork,
    gate: DealGateResult,
    *,
    approval_id: uuid.UUID | None = None,
    clock: Clock = utc_now,
) -> DealRead:
    """Create the reply's deal in the CRM (with contact and company associations and the
    next-step task), or update the deal that exists for the contact/company in the dedupe
    window; deals_shadow and the audit log record either. Idempotent per reply."""
    reply = _reply(uow, gate.reply_id)
    party = _Party(uow, reply)
    repository.lock_contact(uow, reply.prospect_id, party.company_domain)
    own = repository.for_reply(uow, reply.id)
    if own is not None and own.status == DealStatus.CREATED.value:
        return DealRead.model_validate(own)
    now = clock()
    existing = repository.deal_in_window(
        uow,
        prospect_id=reply.prospect_id,
        company_domain=party.company_domain,
        since=window_start(now, dedupe_window_days(_tenant_settings(uow))),
    )
    crm = crm_for(uow)
    domain = party.company_domain or company_domain_of(party.email)
    prospect = party.prospect
    contact = crm.upsert_contact(
        ContactUpsert(
            email=party.email,
            first_name=prospect.first_name if prospect else None,
            last_name=prospect.last_name if prospect else None,
            title=prospect.title if prospect else None,
            company_domain=domain,
        ),
        idempotency_key=f"contact:{prospect.id if prospect else party.email.lower()}",
    )
    if existing is not None:
        return _update(uow, crm, existing, gate, reply, contact.external_id, own, now)
    company_ref = (
        crm.upsert_company(
            CompanyUpsert(domain=domain, name=party.company.name if party.company else None),
            idempotency_key=f"company:{domain}",
        )
        if domain
        else None
    )
    deal = crm.create_deal(
        DealCreate(
            name=deal_name(
                party.company.name if party.company else None, domain, party.email, "positive reply"
            ),
            source="reply",
            intent=DealStage.POSITIVE_REPLY,
        ),
        idempotency_key=f"deal:reply:{reply.id}",
    )
    crm.associate_deal_to_contact(
        deal.external_id, contact.external_id, idempotency_key=f"deal-contact:{reply.id}"
    )
    if company_ref is not None:
        crm.associate_deal_to_company(
            deal.external_id, company_ref.external_id, idempotency_key=f"deal-company:{reply.id}"
        )
    _log_reply(crm, reply, contact.external_id, deal.external_id, now)
    crm.create_task(
        TaskCreate(
            contact_external_id=contact.external_id,
            title=reply.recommendation[:200] or "Follow up on the positive reply",
            due_at=now + NEXT_STEP_DUE,
            note=f"Deal from a positive reply (confidence {gate.confidence:.2f}).",
        ),
        idempotency_key=f"deal-task:{reply.id}",
    )
    audit_crm_writes(uow, crm, DEALS_ACTOR, correlation_id=gate.correlation_id)
    row = own or uow.add(_shadow(gate, DealStatus.CREATED))
    row.status = DealStatus.CREATED.value
    row.company_id = party.company.id if party.company else None
    row.crm_provider = crm.provider
    row.crm_external_id = deal.external_id
    row.approval_id = approval_id or row.approval_id
    row.decision_id = gate.decision_id or row.decision_id
    row.reason = _crm_hold(uow, crm.provider, DealStage.POSITIVE_REPLY)
    uow.flush()
    AuditChain.append(
        uow,
        AuditEventType.DEAL_CREATED,
        DEALS_ACTOR,
        {
            **_deal_payload(row, gate),
            "approval_id": str(row.approval_id) if row.approval_id else None,
            "crm_held": row.reason,
        },
        correlation_id=gate.correlation_id,
    )
    return DealRead.model_validate(row)


def _crm_hold(uow: TenantUnitOfWork, provider: str, stage: DealStage) -> str | None:
    """Why the connected CRM will hold this deal, if it will: HubSpot keeps a deal whose
    stage has no pipeline mapping queued until the tenant maps one (shared/crm/hubspot.py)."""
    if provider != HUBSPOT or stage in stage_mapping(uow).stages:
        return None
    return f"held in HubSpot until a pipeline stage is mapped for {stage.value}"


def _log_reply(
    crm: CrmAdapter, reply: Reply, contact_id: str, deal_id: str | None, now: datetime
) -> None:
    crm.log_engagement(
        EngagementLog(
            type=EngagementType.NOTE,
            contact_external_id=contact_id,
            body=f"Positive reply (confidence {reply.confidence:.2f}). {reply.recommendation}",
            occurred_at=now,
            subject="Positive reply",
            deal_external_id=deal_id,
        ),
        idempotency_key=f"deal-note:{reply.id}",
    )


def _update(
    uow: TenantUnitOfWork,
    crm: CrmAdapter,
    deal: DealShadow,
    gate: DealGateResult,
    reply: Reply,
    contact_id: str,
    own: DealShadow | None,
    now: datetime,
) -> DealRead:
    """Another positive reply for a contact/company whose deal exists: noted on that deal."""
    if deal.last_reply_id == reply.id or deal.source_reply_id == reply.id:
        return DealRead.model_validate(deal)
    _log_reply(crm, reply, contact_id, deal.crm_external_id, now)
    audit_crm_writes(uow, crm, DEALS_ACTOR, correlation_id=gate.correlation_id)
    deal.last_reply_id = reply.id
    deal.confidence = max(deal.confidence, gate.confidence)
    deal.updated_at = now
    if own is not None and own.id != deal.id:
        # This reply waited for approval meanwhile; the deal it asked for exists already.
        own.status = DealStatus.HELD.value
        own.reason = f"merged into deal {deal.id}: a deal exists within the dedupe window"
    uow.flush()
    AuditChain.append(
        uow,
        AuditEventType.DEAL_UPDATED,
        DEALS_ACTOR,
        {**_deal_payload(deal, gate), "updated_by_reply_id": str(reply.id)},
        correlation_id=gate.correlation_id,
    )
    return DealRead.model_validate(deal)


def _deal_payload(row: DealShadow, gate: DealGateResult) -> dict[str, Any]:
    return {
        "deal_shadow_id": str(row.id),
        "reply_id": str(gate.reply_id),
        "prospect_id": str(row.prospect_id) if row.prospect_id else None,
        "campaign_id": str(row.campaign_id) if row.campaign_id else None,
        "stage": row.stage,
        "crm_provider": row.crm_provider,
        "crm_external_id": row.crm_external_id,
        "confidence": gate.confidence,
        "touch_number": gate.touch_number,
        "decision_trace": gate.trace(),
    }


def list_deals(
    uow: TenantUnitOfWork,
    *,
    cursor: str | None = None,
    limit: int = 100,
    status: DealStatus | None = None,
    prospect_id: uuid.UUID | None = None,
) -> DealPage:
    rows = repository.page(
        uow,
        after=decode_time_cursor(cursor) if cursor else None,
        limit=limit + 1,
        status=status,
        prospect_id=prospect_id,
    )
    items = [DealRead.model_validate(row) for row in rows[:limit]]
    more = len(rows) > limit
    next_cursor = encode_time_cursor(items[-1].created_at, items[-1].id) if more else None
    return DealPage(items=items, next_cursor=next_cursor)


# Meetings: "if meeting booked and no deal exists → create + associate" (seed §6F).

# Stages a booked meeting moves a deal out of; QUALIFIED and DISQUALIFIED are a person's call.
ADVANCED_BY_MEETING = frozenset({DealStage.POSITIVE_REPLY.value})


def deal_for_meeting(
    uow: TenantUnitOfWork, meeting: MeetingDeal, *, clock: Clock = utc_now
) -> DealRead:
    """A booked meeting moves the prospect's deal to MEETING_BOOKED, or creates the deal at
    that stage (associated with the contact and company) when none exists in the dedupe
    window. Gated by the policy pack like a reply's deal (source "meeting"); idempotent per
    meeting."""
    prospect = uow.get(Prospect, meeting.prospect_id)
    if prospect is None:
        raise NotFound(f"Prospect {meeting.prospect_id} does not exist.")
    company = uow.get(Company, prospect.company_id) if prospect.company_id else None
    company_domain = company.domain.lower() if company else None
    repository.lock_contact(uow, prospect.id, company_domain)
    window = dedupe_window_days(_tenant_settings(uow))
    existing = repository.deal_in_window(
        uow,
        prospect_id=prospect.id,
        company_domain=company_domain,
        since=window_start(clock(), window),
    )
    decision = decide(
        uow,
        PolicyInput(
            actor=ActorInput(type=DEALS_ACTOR.type.value, id=DEALS_ACTOR.id),
            action=ActionInput(
                type=ActionType.DEAL_CREATE,
                stage=Stage.REPLY,
                campaign_id=str(meeting.campaign_id or ""),
                is_first_touch=False,
            ),
            tenant=TenantInput(id=str(uow.tenant_id), dedupe_window_days=window),
            deal=DealInput(
                existing_deal_in_window=existing is not None,
                existing_deal_id=str(existing.id) if existing else "",
                source="meeting",
            ),
        ),
        DEALS_ACTOR,
        correlation_id=meeting.correlation_id,
    )
    outcome = gate_outcome(decision, existing is not None)
    trace = {
        "decision_id": decision.decision_id,
        "pack": {"id": decision.pack_id, "version": decision.pack_version},
        "input_hash": decision.input_hash,
        "matched_rules": matched_rules(decision),
        "reasons": [reason.text for reason in decision.reasons],
        "outcome": outcome.value,
    }
    audit_base = {
        "prospect_id": str(prospect.id),
        "campaign_id": str(meeting.campaign_id) if meeting.campaign_id else None,
        "meeting_key": meeting.meeting_key,
        "decision_trace": trace,
    }
    if outcome is GateOutcome.NONE:
        reason = "; ".join(
            r.text for r in decision.reasons if r.effect.value in ("deny_deal", "deny")
        )
        row = uow.add(
            DealShadow(
                id=uuid.uuid4(),
                prospect_id=prospect.id,
                company_id=company.id if company else None,
                company_domain=company_domain,
                campaign_id=meeting.campaign_id,
                stage=DealStage.MEETING_BOOKED.value,
                source="meeting",
                status=DealStatus.BLOCKED.value,
                reason=reason[:2000],
                confidence=1.0,
                decision_id=decision.decision_id or None,
                correlation_id=meeting.correlation_id,
            )
        )
        uow.flush()
        AuditChain.append(
            uow,
            AuditEventType.DEAL_CREATION_BLOCKED,
            DEALS_ACTOR,
            {**audit_base, "deal_shadow_id": str(row.id), "reason": row.reason},
            correlation_id=meeting.correlation_id,
        )
        return DealRead.model_validate(row)
    crm = crm_for(uow)
    domain = company_domain or company_domain_of(prospect.email)
    contact = crm.upsert_contact(
        ContactUpsert(
            email=prospect.email,
            first_name=prospect.first_name,
            last_name=prospect.last_name,
            title=prospect.title,
            company_domain=domain,
        ),
        idempotency_key=f"contact:{prospect.id}",
    )
    if existing is not None:
        if existing.stage not in ADVANCED_BY_MEETING:
            return DealRead.model_validate(existing)  # already there, or a person moved it on
        if existing.crm_external_id:
            crm.update_deal_stage(
                existing.crm_external_id,
                DealStage.MEETING_BOOKED.value,
                idempotency_key=f"deal-stage:meeting:{meeting.meeting_key}",
            )
            crm.associate_deal_to_contact(
                existing.crm_external_id,
                contact.external_id,
                idempotency_key=f"deal-contact:meeting:{meeting.meeting_key}",
            )
        audit_crm_writes(uow, crm, DEALS_ACTOR, correlation_id=meeting.correlation_id)
        stage_from = existing.stage
        existing.stage = DealStage.MEETING_BOOKED.value
        existing.updated_at = clock()
        uow.flush()
        AuditChain.append(
            uow,
            AuditEventType.DEAL_UPDATED,
            DEALS_ACTOR,
            {
                **audit_base,
                "deal_shadow_id": str(existing.id),
                "stage_from": stage_from,
                "stage": existing.stage,
                "crm_provider": crm.provider,
                "crm_external_id": existing.crm_external_id,
            },
            correlation_id=meeting.correlation_id,
        )
        return DealRead.model_validate(existing)
    company_ref = (
        crm.upsert_company(
            CompanyUpsert(domain=domain, name=company.name if company else None),
            idempotency_key=f"company:{domain}",
        )
        if domain
        else None
    )
    deal = crm.create_deal(
        DealCreate(
            name=deal_name(
                company.name if company else None, domain, prospect.email, "meeting booked"
            ),
            source="meeting",
            intent=DealStage.MEETING_BOOKED,
        ),
        idempotency_key=f"deal:meeting:{meeting.meeting_key}",
    )
    crm.associate_deal_to_contact(
        deal.external_id,
        contact.external_id,
        idempotency_key=f"deal-contact:meeting:{meeting.meeting_key}",
    )
    if company_ref is not None:
        crm.associate_deal_to_company(
            deal.external_id,
            company_ref.external_id,
            idempotency_key=f"deal-company:meeting:{meeting.meeting_key}",
        )
    audit_crm_writes(uow, crm, DEALS_ACTOR, correlation_id=meeting.correlation_id)
    row = uow.add(
        DealShadow(
            id=uuid.uuid4(),
            prospect_id=prospect.id,
            company_id=company.id if company else None,
            company_domain=company_domain,
            campaign_id=meeting.campaign_id,
            stage=DealStage.MEETING_BOOKED.value,
            source="meeting",
            status=DealStatus.CREATED.value,
            reason=_crm_hold(uow, crm.provider, DealStage.MEETING_BOOKED),
            crm_provider=crm.provider,
            crm_external_id=deal.external_id,
            confidence=1.0,
            decision_id=decision.decision_id or None,
            correlation_id=meeting.correlation_id,
        )
    )
    uow.flush()
    AuditChain.append(
        uow,
        AuditEventType.DEAL_CREATED,
        DEALS_ACTOR,
        {
            **audit_base,
            "deal_shadow_id": str(row.id),
            "stage": row.stage,
            "crm_provider": crm.provider,
            "crm_external_id": deal.external_id,
            "crm_held": row.reason,
        },
        correlation_id=meeting.correlation_id,
    )
    return DealRead.model_validate(row)

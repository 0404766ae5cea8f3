"""The work behind the campaign activities, one unit of work per call.

Each function is what one activity does (ARCHITECTURE.md §4, §6): prepare a touch (research,
draft, policy at draft time, approval request), gate and record a send (policy at send time,
caps, the send intent), deliver and reconcile (mail's effectively-once functions), log the
touch to the CRM, and keep the campaign member's journey state. All are idempotent: an
activity may run more than once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from shared.approvals.schemas import ApprovalRequest
from shared.approvals.service import request_approval
from shared.audit.schemas import Actor, ActorType, AuditEventType
from shared.audit.service import AuditChain
from shared.campaigns.model import next_window_opening
from shared.campaigns.orm import Campaign
from shared.campaigns.orm import Sequence as SequenceRow
from shared.campaigns.schemas import CampaignSettings, EmailStep, SequenceRead
from shared.config import get_settings
from shared.crm.port import ContactUpsert, EmailDirection, EmailLog
from shared.crm.service import audit_crm_writes, crm_for
from shared.db.unit_of_work import TenantUnitOfWork, tenant_unit_of_work
from shared.deliverability.orm import Mailbox
from shared.drafting.orm import Draft
from shared.drafting.schemas import SenderProfile
from shared.drafting.service import DraftResult, create_draft, footer
from shared.errors import Conflict, NotFound
from shared.execution.orm import CampaignMember
from shared.execution.schemas import (
    CanaryVerdict,
    Engagement,
    EngagementQuery,
    EnrolBatch,
    JourneyInput,
    JourneyStatus,
    JourneyUpdate,
    LogTouch,
    PrepareTouch,
    SendOutcome,
    SendTouch,
    SequencePlan,
    TouchOutcome,
    TouchPrepared,
    TouchSendResult,
)
from shared.identity.orm import Tenant
from shared.llm.offline import OfflineModel
from shared.llm.router import ModelRouter
from shared.mail import sending
from shared.mail.inbound import inbound_for_intents
from shared.mail.orm import SendIntent
from shared.mail.schemas import SendIntentCreate, SendStatus
from shared.policy.gate import GateOutcome, SendRequest, check_send, decide_draft
from shared.prospects.orm import Prospect
from shared.replies.orm import Reply
from shared.research.enrichment import EnrichmentResearchSource
from shared.research.service import research_prospect

ORCHESTRATION_ACTOR = Actor(type=ActorType.SYSTEM, id="campaign-orchestration")


class CampaignNotStartable(Conflict):
    code = "campaign_not_startable"
    title = "The campaign cannot start"


def _router() -> ModelRouter:
    # The offline model is the default; tenants' own model keys arrive with the BYOK issue.
    return ModelRouter({"offline": OfflineModel()})


def _campaign(uow: TenantUnitOfWork, campaign_id: uuid.UUID) -> Campaign:
    campaign = uow.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound("Campaign not found.")
    return campaign


def _member(
    uow: TenantUnitOfWork, campaign_id: uuid.UUID, prospect_id: uuid.UUID
) -> CampaignMember:
    member = uow.session.scalars(
        uow.scoped(CampaignMember).where(
            CampaignMember.campaign_id == campaign_id, CampaignMember.prospect_id == prospect_id
        )
    ).one_or_none()
    if member is None:
        raise NotFound("The prospect is not a member of this campaign.")
    return member


def _sequence(uow: TenantUnitOfWork, sequence_id: uuid.UUID) -> SequenceRead:
    row = uow.get(SequenceRow, sequence_id)
    if row is None:
        raise NotFound("Sequence not found.")
    return SequenceRead.model_validate(row)


def _email_step(sequence: SequenceRead, step_id: str) -> tuple[int, EmailStep]:
    for index, step in enumerate(sequence.steps):
        if step.id == step_id and isinstance(step, EmailStep):
            return index, step
    raise NotFound(f"Email step {step_id!r} is not in the sequence.")


def template_hash(step: EmailStep) -> str:
    """Identifies a step's template: "approve once" covers later drafts of the same one."""
    return hashlib.sha256(f"{step.subject}\n{step.body}".encode()).hexdigest()


def sender_profile(uow: TenantUnitOfWork, mailbox: Mailbox) -> SenderProfile:
    tenant = uow.session.scalars(select(Tenant).where(Tenant.id == uow.tenant_id)).one()
    settings = tenant.settings
    return SenderProfile(
        name=str(settings.get("sender_name") or mailbox.address.split("@")[0]),
        title=settings.get("sender_title"),
        company=str(settings.get("company_name") or tenant.name),
        postal_address=str(settings.get("postal_address") or ""),
    )


def sequence_plan(tenant_id: uuid.UUID, sequence_id: uuid.UUID) -> SequencePlan:
    with tenant_unit_of_work(tenant_id) as uow:
        sequence = _sequence(uow, sequence_id)
    steps = [step.model_dump(mode="json") for step in sequence.steps]
    return SequencePlan(steps=steps, first_step_id=sequence.steps[0].id)


def _draft_for(
    uow: TenantUnitOfWork, request: PrepareTouch, *, research: bool = True
) -> DraftResult:
    journey = request.journey
    mailbox = uow.get(Mailbox, journey.mailbox_id)
    if mailbox is None:
        raise NotFound("Mailbox not found.")
    prospect = uow.get(Prospect, journey.prospect_id)
    if prospect is None:
        raise NotFound("Prospect not found.")
    if research:
        research_prospect(
            uow,
            journey.prospect_id,
            [EnrichmentResearchSource()],
            ORCHESTRATION_ACTOR,
            correlation_id=journey.correlation_id,
        )
    return create_draft(
        uow,
        campaign_id=journey.campaign_id,
        sequence_id=journey.sequence_id,
        prospect_id=journey.prospect_id,
        step_id=request.step_id,
        sender=sender_profile(uow, mailbox),
        unsubscribe_url=sending.list_unsubscribe_url(uow.tenant_id, prospect.email),
        router=_router(),
        actor=ORCHESTRATION_ACTOR,
        correlation_id=journey.correlation_id,
    )


def _send_request(
    uow: TenantUnitOfWork,
    journey: JourneyInput,
    step_index: int,
    step: EmailStep,
    touch_number: int,
    draft: DraftResult,
    recipient: str,
    approval_id: uuid.UUID | None,
    *,
    canary_passed: bool,
) -> SendRequest:
    mailbox = uow.get(Mailbox, journey.mailbox_id)
    if mailbox is None:
        raise NotFound("Mailbox not found.")
    # Policy judges the message as it will go out: with the footer the builder adds.
    as_sent = draft.draft.body + footer(
        sender_profile(uow, mailbox), sending.list_unsubscribe_url(uow.tenant_id, recipient)
    )
    return SendRequest(
        action_id=f"{journey.campaign_id}:{journey.prospect_id}:{step.id}",
        mailbox_id=journey.mailbox_id,
        recipient=recipient,
        campaign_id=journey.campaign_id,
        prospect_id=journey.prospect_id,
        sequence_step=step_index,
        touch_number=touch_number,
        template_hash=template_hash(step),
        approval_mode=step.approval.value,
        approval_id=approval_id,
        subject=draft.draft.subject,
        body=as_sent,
        evidence=draft.evidence,
        canary_send=journey.canary,
        canary_passed=canary_passed,
        correlation_id=journey.correlation_id,
    )


def prepare_touch(request: PrepareTouch) -> TouchPrepared:
    """Research, draft and decide at draft time; open an approval when a person must decide."""
    journey = request.journey
    with tenant_unit_of_work(journey.tenant_id) as uow:
        sequence = _sequence(uow, journey.sequence_id)
        step_index, step = _email_step(sequence, request.step_id)
        draft = _draft_for(uow, request)
        prospect = uow.get(Prospect, journey.prospect_id)
        assert prospect is not None
        campaign = _campaign(uow, journey.campaign_id)
        send_request = _send_request(
            uow,
            journey,
            step_index,
            step,
            request.touch_number,
            draft,
            prospect.email,
            None,
            canary_passed=campaign.canary_passed_at is not None,
        )
        decision = decide_draft(uow, send_request, ORCHESTRATION_ACTOR)
        draft_row = uow.get(Draft, draft.draft.id)
        assert draft_row is not None
        reasons = [f"{r.rule_id}: {r.text}" for r in decision.reasons]
        if not decision.allowed:
            draft_row.status = "blocked"
            return TouchPrepared(
                outcome=TouchOutcome.DENIED, draft_id=draft_row.id, reasons=reasons
            )
        if decision.approval_required or decision.require_manual_review:
            approval = request_approval(
                uow,
                ApprovalRequest(
                    action_kind="send",
                    action_id=str(draft_row.id),
                    campaign_id=journey.campaign_id,
                    prospect_id=journey.prospect_id,
                    sequence_step=step_index,
                    template_hash=template_hash(step),
                    orchestration_instance_id=journey.instance_id,
                    mode=step.approval.value,
                    summary=f"{draft_row.subject} — to {prospect.email}",
                    preview={
                        "subject": draft_row.subject,
                        "body": draft_row.body,
                        "bullets": draft_row.bullets,
                        "cta": draft_row.cta,
                    },
                    evidence=[{"id": str(i)} for i in draft_row.evidence_ids],
                    decision_trace=decision.model_dump(
                        mode="json",
                        include={"decision_id", "pack_id", "pack_version", "reasons", "trace"},
                    ),
                ),
                ORCHESTRATION_ACTOR,
            )
            draft_row.status = "pending_approval"
            _set_status(
                uow,
                journey.campaign_id,
                journey.prospect_id,
                JourneyStatus.AWAITING_APPROVAL,
                None,
                request.step_id,
            )
            return TouchPrepared(
                outcome=TouchOutcome.APPROVAL_REQUIRED,
                draft_id=draft_row.id,
                approval_id=approval.id,
                reasons=reasons,
            )
        return TouchPrepared(outcome=TouchOutcome.READY, draft_id=draft_row.id, reasons=reasons)


def send_touch(request: SendTouch, now: datetime | None = None) -> TouchSendResult:
    """Policy at send time and the cap reservation, then the send intent — one transaction."""
    journey = request.journey
    key = f"{journey.campaign_id}:{journey.prospect_id}:{request.step_id}"
    with tenant_unit_of_work(journey.tenant_id) as uow:
        existing = sending.intent_by_key(uow, key)
        if existing is not None:  # a retried activity: the first attempt already recorded it
            return TouchSendResult(outcome=SendOutcome.RECORDED, intent_id=existing.id)
        campaign = _campaign(uow, journey.campaign_id)
        moment = now or datetime.now(UTC)
        if campaign.status == "paused":
            return TouchSendResult(
                outcome=SendOutcome.WAIT,
                wait_until=(
                    moment + timedelta(seconds=get_settings().pause_poll_seconds)
                ).isoformat(),
                reasons=["the campaign is paused"],
            )
        settings = CampaignSettings.model_validate(campaign.settings)
        opening = next_window_opening(moment, settings.send_window)
        if opening is not None:
            return TouchSendResult(
                outcome=SendOutcome.WAIT,
                wait_until=opening.isoformat(),
                reasons=["outside the campaign's send window"],
            )
        sequence = _sequence(uow, journey.sequence_id)
        step_index, step = _email_step(sequence, request.step_id)
        draft_row = uow.get(Draft, request.draft_id)
        prospect = uow.get(Prospect, journey.prospect_id)
        if draft_row is None or prospect is None:
            raise NotFound("Draft or prospect not found.")
        # The draft exists (prepared earlier): this returns it with its grounding and risk.
        draft = _draft_for(
            uow,
            PrepareTouch(
                journey=journey, step_id=request.step_id, touch_number=request.touch_number
            ),
            research=False,
        )
        result = check_send(
            uow,
            _send_request(
                uow,
                journey,
                step_index,
                step,
                request.touch_number,
                draft,
                prospect.email,
                request.approval_id,
                canary_passed=campaign.canary_passed_at is not None,
            ),
            ORCHESTRATION_ACTOR,
        )
        reasons = [f"{r.rule_id}: {r.text}" for r in result.decision.reasons]
        if result.outcome is GateOutcome.CAP_REFUSED and result.cap_refusal is not None:
            return TouchSendResult(
                outcome=SendOutcome.WAIT,
                wait_until=result.cap_refusal.retry_at.isoformat(),
                reasons=[f"cap {result.cap_refusal.scope.value} reached"],
            )
        if result.outcome is not GateOutcome.ALLOWED:
            draft_row.status = "blocked"
            return TouchSendResult(
                outcome=SendOutcome.DENIED, reasons=reasons or [result.outcome.value]
            )
        recorded = sending.record_send_intent(
            uow,
            SendIntentCreate(
                idempotency_key=key,
                mailbox_id=journey.mailbox_id,
                recipient=prospect.email,
                recipient_name=" ".join(p for p in (prospect.first_name, prospect.last_name) if p)
                or None,
                subject=draft_row.subject,
                text=draft_row.body,
                campaign_id=journey.campaign_id,
                prospect_id=journey.prospect_id,
                step_id=request.step_id,
                reply_to_intent_id=request.previous_intent_id,
                correlation_id=journey.correlation_id,
            ),
        )
        draft_row.status = "approved" if request.approval_id else draft_row.status
        return TouchSendResult(outcome=SendOutcome.RECORDED, intent_id=recorded.intent.id)


def log_touch(request: LogTouch) -> None:
    """The sent touch into the CRM (internal records, or the tenant's CRM) and the journey."""
    journey = request.journey
    with tenant_unit_of_work(journey.tenant_id) as uow:
        intent = uow.get(SendIntent, request.intent_id)
        prospect = uow.get(Prospect, journey.prospect_id)
        if intent is None or prospect is None:
            raise NotFound("Send intent or prospect not found.")
        crm = crm_for(uow)
        contact = crm.upsert_contact(
            ContactUpsert(
                email=prospect.email,
                first_name=prospect.first_name,
                last_name=prospect.last_name,
                title=prospect.title,
                company_domain=prospect.email.rsplit("@", 1)[1],
            ),
            idempotency_key=f"contact:{prospect.id}",
        )
        crm.log_email(
            EmailLog(
                contact_external_id=contact.external_id,
                subject=intent.subject,
                body=intent.raw_message.decode("utf-8", "replace")[:10_000],
                direction=EmailDirection.OUTBOUND,
                sent_at=intent.sent_at or datetime.now(UTC),
                message_id=intent.message_id,
            ),
            idempotency_key=f"email:{intent.id}",
        )
        audit_crm_writes(uow, crm, ORCHESTRATION_ACTOR, correlation_id=journey.correlation_id)
        draft = uow.session.scalars(
            uow.scoped(Draft).where(
                Draft.campaign_id == journey.campaign_id,
                Draft.prospect_id == journey.prospect_id,
                Draft.step_id == request.step_id,
            )
        ).one_or_none()
        if draft is not None:
            draft.status = "sent"
        member = _member(uow, journey.campaign_id, journey.prospect_id)
        sent = uow.session.scalar(
            select(func.count())
            .select_from(SendIntent)
            .where(
                SendIntent.tenant_id == uow.tenant_id,
                SendIntent.campaign_id == journey.campaign_id,
                SendIntent.prospect_id == journey.prospect_id,
                SendIntent.status == SendStatus.SENT.value,
            )
        )
        member.touches_sent = int(sent or 0)
        member.last_step_id = request.step_id
        member.status = JourneyStatus.RUNNING.value


def _set_status(
    uow: TenantUnitOfWork,
    campaign_id: uuid.UUID,
    prospect_id: uuid.UUID,
    status: JourneyStatus,
    reason: str | None,
    step_id: str | None,
) -> None:
    member = _member(uow, campaign_id, prospect_id)
    member.status = status.value
    member.reason = reason[:500] if reason else None
    if step_id:
        member.last_step_id = step_id


def update_journey(update_request: JourneyUpdate) -> None:
    with tenant_unit_of_work(update_request.tenant_id) as uow:
        _set_status(
            uow,
            update_request.campaign_id,
            update_request.prospect_id,
            update_request.status,
            update_request.reason,
            update_request.step_id,
        )
        # A reply ends a journey too, and the prospect's audit trail must say so and why.
        if update_request.status in (
            JourneyStatus.HELD,
            JourneyStatus.STOPPED,
            JourneyStatus.REPLIED,
        ):
            AuditChain.append(
                uow,
                AuditEventType.JOURNEY_ENDED,
                ORCHESTRATION_ACTOR,
                {
                    "campaign_id": str(update_request.campaign_id),
                    "prospect_id": str(update_request.prospect_id),
                    "status": update_request.status.value,
                    "reason": update_request.reason,
                },
                correlation_id=update_request.correlation_id,
            )


def engagement(query: EngagementQuery) -> Engagement:
    with tenant_unit_of_work(query.tenant_id) as uow:
        intents = uow.session.scalars(
            select(SendIntent.id).where(
                SendIntent.tenant_id == uow.tenant_id,
                SendIntent.campaign_id == query.campaign_id,
                SendIntent.prospect_id == query.prospect_id,
            )
        ).all()
        inbound = inbound_for_intents(uow, list(intents))
    bounced = any(_is_report(message.content_type) for message in inbound)
    replied = any(not _is_report(message.content_type) for message in inbound)
    return Engagement(replied=replied, bounced=bounced)


def _is_report(content_type: str) -> bool:
    # DSNs (RFC 3464) and ARF complaints (RFC 5965) arrive as multipart/report.
    return content_type.lower().startswith("multipart/report")


def members_to_enrol(
    uow: TenantUnitOfWork, campaign_id: uuid.UUID, after_position: int, limit: int, canary: bool
) -> Sequence[CampaignMember]:
    statement = (
        uow.scoped(CampaignMember)
        .where(
            CampaignMember.campaign_id == campaign_id,
            CampaignMember.position > after_position,
            CampaignMember.status == "pending",
        )
        .order_by(CampaignMember.position)
        .limit(limit)
    )
    if canary:
        statement = statement.where(CampaignMember.canary.is_(True))
    return uow.session.scalars(statement).all()


def assign_instances(
    tenant_id: uuid.UUID, campaign_id: uuid.UUID, instance_ids: dict[uuid.UUID, str]
) -> None:
    """Record each pending member's instance id before its journey starts: the kill switch
    signals the instances it can see, so one started before its id was visible would be missed
    (its own policy check may have run before the switch, too)."""
    _set_pending_members(tenant_id, campaign_id, instance_ids, status="pending")


def mark_enrolled(
    tenant_id: uuid.UUID, campaign_id: uuid.UUID, instance_ids: dict[uuid.UUID, str]
) -> None:
    _set_pending_members(tenant_id, campaign_id, instance_ids, status="running")


def _set_pending_members(
    tenant_id: uuid.UUID,
    campaign_id: uuid.UUID,
    instance_ids: dict[uuid.UUID, str],
    status: str,
) -> None:
    with tenant_unit_of_work(tenant_id) as uow:
        for prospect_id, instance_id in instance_ids.items():
            uow.execute(
                update(CampaignMember)
                .where(
                    CampaignMember.tenant_id == uow.tenant_id,
                    CampaignMember.campaign_id == campaign_id,
                    CampaignMember.prospect_id == prospect_id,
                    CampaignMember.status == "pending",
                )
                .values(status=status, instance_id=instance_id)
            )


def canary_verdict(tenant_id: uuid.UUID, campaign_id: uuid.UUID) -> CanaryVerdict:
    """Escalate past the canary only if its sends stayed under the campaign's thresholds."""
    with tenant_unit_of_work(tenant_id) as uow:
        campaign = _campaign(uow, campaign_id)
        canary = CampaignSettings.model_validate(campaign.settings).canary
        members = uow.session.scalars(
            uow.scoped(CampaignMember).where(
                CampaignMember.campaign_id == campaign_id, CampaignMember.canary.is_(True)
            )
        ).all()
        prospect_ids = [m.prospect_id for m in members]
        intents = uow.session.scalars(
            select(SendIntent).where(
                SendIntent.tenant_id == uow.tenant_id,
                SendIntent.campaign_id == campaign_id,
                SendIntent.prospect_id.in_(prospect_ids),
                SendIntent.status == SendStatus.SENT.value,
            )
        ).all()
        labels = list(
            uow.session.scalars(
                select(Reply.label).where(
                    Reply.tenant_id == uow.tenant_id,
                    Reply.campaign_id == campaign_id,
                    Reply.prospect_id.in_(prospect_ids),
                )
            )
        )
    sent = len(intents)
    bounces = labels.count("bounce")
    complaints = labels.count("complaint")
    negative = sum(1 for label in labels if label in ("objection", "unsubscribe"))
    reasons = []
    if sent and bounces / sent > canary.max_bounce_rate:
        reasons.append(f"bounce rate {bounces}/{sent} above {canary.max_bounce_rate:.1%}")
    if sent and complaints / sent > canary.max_complaint_rate:
        reasons.append(f"complaint rate {complaints}/{sent} above {canary.max_complaint_rate:.2%}")
    if negative > canary.max_negative_replies:
        reasons.append(f"{negative} negative replies (max {canary.max_negative_replies})")
    return CanaryVerdict(
        escalate=not reasons,
        sent=sent,
        bounces=bounces,
        complaints=complaints,
        negative_replies=negative,
        reasons=reasons,
    )


@dataclass(frozen=True)
class EnrolmentItem:
    prospect_id: uuid.UUID
    position: int
    canary: bool
    mailbox_id: uuid.UUID


@dataclass(frozen=True)
class Enrolment:
    items: list[EnrolmentItem]
    paused: bool = False
    stopped: bool = False


def enrolment_batch(batch: EnrolBatch) -> Enrolment:
    """The next pending members, each assigned a mailbox of the campaign (round robin);
    none while the campaign is paused (enrolment waits) or stopped (enrolment ends)."""
    with tenant_unit_of_work(batch.tenant_id) as uow:
        campaign = _campaign(uow, batch.campaign_id)
        if campaign.status in ("paused", "stopped"):
            return Enrolment(
                [], paused=campaign.status == "paused", stopped=campaign.status == "stopped"
            )
        mailboxes = CampaignSettings.model_validate(campaign.settings).mailbox_ids
        if not mailboxes:
            raise NotFound("The campaign has no mailbox.")
        members = members_to_enrol(
            uow, batch.campaign_id, batch.after_position, batch.limit, batch.canary
        )
        return Enrolment(
            [
                EnrolmentItem(
                    m.prospect_id, m.position, m.canary, mailboxes[m.position % len(mailboxes)]
                )
                for m in members
            ]
        )

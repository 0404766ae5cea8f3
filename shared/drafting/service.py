"""Use case: draft one sequence step for one prospect, grounded in evidence.

The step's templates are filled from the prospect, company and sender; the model adds
personalization, citing evidence ids for every factual line. Lines citing nothing, or
citing evidence we do not hold, count as claims without evidence, which the policy denies.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from shared.audit.schemas import Actor, AuditEventType
from shared.audit.service import AuditChain
from shared.campaigns.model import render
from shared.campaigns.orm import Campaign, Sequence
from shared.campaigns.schemas import EmailStep, SequenceRead
from shared.db.unit_of_work import TenantUnitOfWork
from shared.drafting.orm import Draft
from shared.drafting.risk import DraftText, RiskSettings, assess_content
from shared.drafting.schemas import Bullet, DraftOutput, DraftRead, SenderProfile
from shared.errors import NotFound, ValidationFailed
from shared.identity.orm import Tenant
from shared.llm.ledger import DbSpendLedger
from shared.llm.port import GenerationRequest, Task
from shared.llm.router import ModelRouter, TenantModelPolicy
from shared.policy.schemas import ContentInput, EvidenceInput
from shared.research.port import ResearchSubject
from shared.research.schemas import EvidenceRead
from shared.research.service import evidence_for, subject_for

DRAFT_INSTRUCTIONS = (
    "Write the email from the step's subject and body. Add at most two personalization lines, "
    "each built only from the evidence given, citing its evidence ids. Make no claim about the "
    "prospect or their company that no evidence supports."
)


@dataclass(frozen=True)
class DraftResult:
    draft: DraftRead
    evidence: EvidenceInput
    content: ContentInput
    created: bool


def template_values(
    subject: ResearchSubject, sender: SenderProfile, unsubscribe_url: str, variables: list[str]
) -> dict[str, str]:
    full_name = " ".join(part for part in (subject.first_name, subject.last_name) if part)
    values = {
        "first_name": subject.first_name or "",
        "last_name": subject.last_name or "",
        "full_name": full_name,
        "title": subject.title or "",
        "company_name": subject.company_name or subject.company_domain or "",
        "company_domain": subject.company_domain or "",
        "sender_name": sender.name,
        "sender_title": sender.title or "",
        "sender_company": sender.company,
        "unsubscribe_url": unsubscribe_url,
        "postal_address": sender.postal_address,
    }
    for name in variables:
        value = subject.prospect_enrichment.get(name, subject.company_enrichment.get(name))
        if isinstance(value, str | int | float):
            values[name] = str(value)
    return values


def footer(sender: SenderProfile, unsubscribe_url: str) -> str:
    # CAN-SPAM: a physical postal address and a working opt-out in every commercial email.
    return f"\n\n--\n{sender.company}, {sender.postal_address}\nUnsubscribe: {unsubscribe_url}"


def _grounding(claims: list[Bullet], held: dict[str, EvidenceRead]) -> EvidenceInput:
    unsupported = sum(
        1
        for claim in claims
        if not claim.evidence_ids or not set(claim.evidence_ids) <= held.keys()
    )
    cited = [held[i] for claim in claims for i in claim.evidence_ids if i in held]
    now = datetime.now(UTC)
    oldest = max(((now - e.fetched_at).days for e in cited), default=0)
    return EvidenceInput(
        factual_claims=len(claims),
        claims_without_evidence=unsupported,
        evidence_count=len(held),
        min_source_age_days=max(oldest, 0),
    )


def _step(sequence: Sequence, step_id: str) -> EmailStep:
    read = SequenceRead.model_validate(sequence)
    for step in read.steps:
        if step.id == step_id:
            if not isinstance(step, EmailStep):
                raise ValidationFailed(f"Step {step_id!r} is not an email step.")
            return step
    raise NotFound(f"Step {step_id!r} is not in sequence version {sequence.version}.")


def create_draft(
    uow: TenantUnitOfWork,
    *,
    campaign_id: uuid.UUID,
    sequence_id: uuid.UUID,
    prospect_id: uuid.UUID,
    step_id: str,
    sender: SenderProfile,
    unsubscribe_url: str,
    router: ModelRouter,
    actor: Actor,
    correlation_id: str | None = None,
) -> DraftResult:
    """The draft for this prospect and step, created once; later calls return the same one."""
    existing = uow.session.scalars(
        uow.scoped(Draft).where(
            Draft.campaign_id == campaign_id,
            Draft.prospect_id == prospect_id,
            Draft.step_id == step_id,
        )
    ).one_or_none()
    tenant = uow.session.scalars(select(Tenant).where(Tenant.id == uow.tenant_id)).one()
    risk_settings = RiskSettings.from_tenant_settings(
        tenant.settings, unsubscribe_markers=[unsubscribe_url]
    )
    if existing is not None:
        read = DraftRead.model_validate(existing)
        held = {str(e.id): e for e in evidence_for(uow, prospect_id)}
        claims = [Bullet.model_validate(c) for c in read.claims]
        content = assess_content(
            DraftText(read.subject, read.body + footer(sender, unsubscribe_url)), risk_settings
        )
        return DraftResult(read, _grounding(claims, held), content, created=False)

    campaign = uow.get(Campaign, campaign_id)
    sequence = uow.get(Sequence, sequence_id)
    if campaign is None or sequence is None or sequence.campaign_id != campaign_id:
        raise NotFound("Campaign or sequence not found.")
    step = _step(sequence, step_id)
    subject = subject_for(uow, prospect_id)
    values = template_values(subject, sender, unsubscribe_url, list(sequence.variables))
    rendered_subject, _ = render(step.subject, values)
    rendered_body, _ = render(step.body, values)
    evidence = evidence_for(uow, prospect_id)
    held = {str(e.id): e for e in evidence}
    result = router.generate(
        uow.tenant_id,
        TenantModelPolicy.from_settings(tenant.settings),
        GenerationRequest(
            task=Task.DRAFT_EMAIL,
            output_schema=DraftOutput,
            instructions=DRAFT_INSTRUCTIONS,
            context={
                "subject": rendered_subject,
                "body": rendered_body,
                "evidence": [e.for_model() for e in evidence],
                "prospect": {"first_name": subject.first_name, "title": subject.title},
                "company": {"name": subject.company_name, "domain": subject.company_domain},
            },
        ),
        DbSpendLedger(uow),
    )
    output = result.output
    # Stored without the footer: the message builder adds the compliance footer at send time,
    # and the risk check reads the body as it will go out, footer included.
    body = output.body
    grounding = _grounding(output.claims, held)
    content = assess_content(
        DraftText(output.subject, body + footer(sender, unsubscribe_url)), risk_settings
    )
    cited = sorted(
        {i for b in [*output.bullets, *output.claims] for i in b.evidence_ids if i in held}
    )
    draft = Draft(
        prospect_id=prospect_id,
        campaign_id=campaign_id,
        sequence_id=sequence.id,
        sequence_version=sequence.version,
        step_id=step_id,
        subject=output.subject,
        body=body,
        cta=output.cta,
        bullets=[b.model_dump() for b in output.bullets],
        claims=[c.model_dump() for c in output.claims],
        evidence_ids=[uuid.UUID(i) for i in cited],
        content_risk=content.model_dump(mode="json"),
        evidence_summary=grounding.model_dump(mode="json"),
        model_provider=result.provider,
        model_name=result.model,
        status="draft",
    )
    uow.add(draft)
    uow.flush()
    read = DraftRead.model_validate(draft)
    AuditChain.append(
        uow,
        AuditEventType.DRAFT_CREATED,
        actor,
        {
            "draft_id": str(draft.id),
            "prospect_id": str(prospect_id),
            "campaign_id": str(campaign_id),
            "step_id": step_id,
            "evidence_ids": cited,
            "claims_without_evidence": grounding.claims_without_evidence,
            "content_risk_score": content.risk_score,
            "model": f"{result.provider}/{result.model}",
        },
        correlation_id=correlation_id,
    )
    return DraftResult(read, grounding, content, created=True)

"""Use case: research a prospect — gather facts from every source, keep each once."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

from sqlalchemy.dialects.postgresql import insert

from shared.audit.schemas import Actor, AuditEventType
from shared.audit.service import AuditChain
from shared.db.unit_of_work import TenantUnitOfWork
from shared.errors import NotFound
from shared.prospects.orm import Company, Prospect
from shared.research.orm import Evidence
from shared.research.port import ResearchSource, ResearchSubject
from shared.research.schemas import EvidenceRead, Fact


def content_hash(fact: Fact) -> str:
    return hashlib.sha256(
        f"{fact.source_url}\n{fact.statement}\n{fact.excerpt}".encode()
    ).hexdigest()


def subject_for(uow: TenantUnitOfWork, prospect_id: uuid.UUID) -> ResearchSubject:
    prospect = uow.get(Prospect, prospect_id)
    if prospect is None:
        raise NotFound("Prospect not found.")
    company = uow.get(Company, prospect.company_id) if prospect.company_id else None
    return ResearchSubject(
        prospect_id=prospect.id,
        email=prospect.email,
        first_name=prospect.first_name,
        last_name=prospect.last_name,
        title=prospect.title,
        company_id=company.id if company else None,
        company_name=company.name if company else None,
        company_domain=company.domain if company else None,
        industry=company.industry if company else None,
        prospect_enrichment=dict(prospect.enrichment),
        company_enrichment=dict(company.enrichment) if company else {},
        known_since=prospect.created_at,
    )


def evidence_for(uow: TenantUnitOfWork, prospect_id: uuid.UUID) -> list[EvidenceRead]:
    rows = uow.session.scalars(
        uow.scoped(Evidence)
        .where(Evidence.prospect_id == prospect_id)
        .order_by(Evidence.created_at)
    ).all()
    return [EvidenceRead.model_validate(row) for row in rows]


def research_prospect(
    uow: TenantUnitOfWork,
    prospect_id: uuid.UUID,
    sources: Sequence[ResearchSource],
    actor: Actor,
    correlation_id: str | None = None,
) -> list[EvidenceRead]:
    """All evidence for the prospect after asking every source; re-running adds nothing new."""
    subject = subject_for(uow, prospect_id)
    gathered: list[tuple[str, Fact]] = [
        (source.name, fact) for source in sources for fact in source.gather(subject)
    ]
    if gathered:
        uow.execute(
            insert(Evidence).on_conflict_do_nothing(
                index_elements=[Evidence.tenant_id, Evidence.prospect_id, Evidence.content_hash]
            ),
            [
                {
                    "id": uuid.uuid4(),
                    "tenant_id": uow.tenant_id,
                    "prospect_id": prospect_id,
                    "kind": fact.kind,
                    "statement": fact.statement,
                    "source_url": fact.source_url,
                    "excerpt": fact.excerpt,
                    "fetched_at": fact.fetched_at,
                    "content_hash": content_hash(fact),
                    "confidence": fact.confidence,
                    "source": source_name,
                }
                for source_name, fact in gathered
            ],
        )
    evidence = evidence_for(uow, prospect_id)
    AuditChain.append(
        uow,
        AuditEventType.RESEARCH_COMPLETED,
        actor,
        {
            "prospect_id": str(prospect_id),
            "sources": sorted({source.name for source in sources}),
            "facts": len(evidence),
            "evidence_hashes": [e.content_hash for e in evidence],
        },
        correlation_id=correlation_id,
    )
    return evidence

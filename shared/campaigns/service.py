"""Use cases: campaigns and their versioned sequences."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from shared.audit.schemas import Actor, AuditEventType
from shared.audit.service import AuditChain
from shared.campaigns import repository
from shared.campaigns.model import sequence_problems
from shared.campaigns.orm import Campaign, Sequence
from shared.campaigns.schemas import (
    CampaignCreate,
    CampaignPage,
    CampaignRead,
    SequenceCreate,
    SequenceRead,
)
from shared.db.unit_of_work import TenantUnitOfWork
from shared.errors import NotFound, ValidationFailed
from shared.pagination import decode_cursor, encode_cursor


class SequenceInvalid(ValidationFailed):
    code = "sequence_invalid"
    title = "The sequence cannot run"


def create_campaign(uow: TenantUnitOfWork, request: CampaignCreate, actor: Actor) -> CampaignRead:
    campaign = Campaign(
        name=request.name,
        target_persona=request.target_persona.model_dump(mode="json"),
        offer=request.offer,
        status="draft",
        settings=request.settings.model_dump(mode="json"),
    )
    uow.add(campaign)
    uow.flush()
    read = CampaignRead.model_validate(campaign)
    AuditChain.append(
        uow,
        AuditEventType.CAMPAIGN_CREATED,
        actor,
        {"campaign_id": str(campaign.id), "name": campaign.name, "settings": campaign.settings},
    )
    return read


def get_campaign(uow: TenantUnitOfWork, campaign_id: uuid.UUID) -> CampaignRead:
    campaign = uow.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFound("Campaign not found.")
    return CampaignRead.model_validate(campaign)


def list_campaigns(
    uow: TenantUnitOfWork, *, cursor: str | None, limit: int, status: str | None
) -> CampaignPage:
    after = decode_cursor(cursor) if cursor else None
    found = repository.list_campaigns(uow, after_id=after, limit=limit + 1, status=status)
    items = [CampaignRead.model_validate(c) for c in found[:limit]]
    return CampaignPage(
        items=items, next_cursor=encode_cursor(items[-1].id) if len(found) > limit else None
    )


def create_sequence(
    uow: TenantUnitOfWork, campaign_id: uuid.UUID, request: SequenceCreate, actor: Actor
) -> SequenceRead:
    """A new immutable version of the campaign's sequence, refused (422) unless it can run."""
    # Lock the campaign so concurrent saves get consecutive versions, not a unique violation.
    campaign = uow.session.scalars(
        select(Campaign)
        .where(Campaign.tenant_id == uow.tenant_id, Campaign.id == campaign_id)
        .with_for_update()
    ).one_or_none()
    if campaign is None:
        raise NotFound("Campaign not found.")
    problems = sequence_problems(request)
    if problems:
        raise SequenceInvalid(
            f"{len(problems)} problem(s) in the sequence.",
            errors=[{"location": p.location, "message": p.message} for p in problems],
        )
    sequence = Sequence(
        campaign_id=campaign.id,
        name=request.name,
        version=repository.next_sequence_version(uow, campaign.id),
        steps=[step.model_dump(mode="json") for step in request.steps],
        variables=list(request.variables),
    )
    uow.add(sequence)
    uow.flush()
    AuditChain.append(
        uow,
        AuditEventType.SEQUENCE_CREATED,
        actor,
        {
            "campaign_id": str(campaign.id),
            "sequence_id": str(sequence.id),
            "version": sequence.version,
            "steps": len(sequence.steps),
        },
    )
    return SequenceRead.model_validate(sequence)


def list_sequences(uow: TenantUnitOfWork, campaign_id: uuid.UUID) -> list[SequenceRead]:
    if uow.get(Campaign, campaign_id) is None:
        raise NotFound("Campaign not found.")
    return [SequenceRead.model_validate(s) for s in repository.list_sequences(uow, campaign_id)]

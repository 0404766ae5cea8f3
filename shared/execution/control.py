"""Campaign control: membership, start and stop, canary outcome, execution status."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import func, select

from shared.audit.schemas import Actor, AuditEventType
from shared.audit.service import AuditChain
from shared.campaigns.orm import Campaign
from shared.campaigns.repository import latest_sequence
from shared.campaigns.schemas import CampaignSettings
from shared.db.unit_of_work import TenantUnitOfWork, tenant_unit_of_work
from shared.deliverability.orm import Mailbox
from shared.errors import NotFound
from shared.execution.orm import CampaignMember
from shared.execution.schemas import (
    CampaignRunInput,
    CanaryVerdict,
    campaign_instance_id,
)
from shared.execution.service import ORCHESTRATION_ACTOR, CampaignNotStartable
from shared.policy.kill_switch import kill_switch_state
from shared.prospects.orm import Prospect

STARTABLE = ("draft", "paused")
LIVE_MEMBER_STATUSES = ("running", "awaiting_approval")


class AddMembers(BaseModel):
    prospect_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10_000)
    all_active: bool = Field(default=False, description="Every active prospect of the tenant")

    @model_validator(mode="after")
    def _names_prospects_or_all(self) -> AddMembers:
        if not self.prospect_ids and not self.all_active:
            raise ValueError("name prospect_ids or set all_active")
        return self


class MembersAdded(BaseModel):
    added: int
    already_members: int
    skipped_inactive: int


class MemberCounts(BaseModel):
    campaign_id: uuid.UUID
    status: str
    canary_passed: bool
    members: dict[str, int]


def _campaign(uow: TenantUnitOfWork, campaign_id: uuid.UUID, *, lock: bool = False) -> Campaign:
    statement = select(Campaign).where(
        Campaign.tenant_id == uow.tenant_id, Campaign.id == campaign_id
    )
    campaign = uow.session.scalars(statement.with_for_update() if lock else statement).one_or_none()
    if campaign is None:
        raise NotFound("Campaign not found.")
    return campaign


def add_members(
    uow: TenantUnitOfWork, campaign_id: uuid.UUID, request: AddMembers, actor: Actor
) -> MembersAdded:
    _campaign(uow, campaign_id, lock=True)  # serializes positions
    statement = uow.scoped(Prospect).order_by(Prospect.created_at, Prospect.id)
    if not request.all_active:
        statement = statement.where(Prospect.id.in_(request.prospect_ids))
    prospects = uow.session.scalars(statement).all()
    if not request.all_active and len(prospects) != len(set(request.prospect_ids)):
        raise NotFound("Some prospects do not exist.")
    existing = set(
        uow.session.scalars(
            select(CampaignMember.prospect_id).where(
                CampaignMember.tenant_id == uow.tenant_id,
                CampaignMember.campaign_id == campaign_id,
            )
        )
    )
    position = int(
        uow.session.scalar(
            select(func.coalesce(func.max(CampaignMember.position), 0)).where(
                CampaignMember.tenant_id == uow.tenant_id,
                CampaignMember.campaign_id == campaign_id,
            )
        )
        or 0
    )
    added = skipped = 0
    for prospect in prospects:
        if prospect.id in existing:
            continue
        if prospect.status != "active":
            skipped += 1
            continue
        position += 1
        uow.add(
            CampaignMember(
                campaign_id=campaign_id,
                prospect_id=prospect.id,
                position=position,
                status="pending",
                canary=False,
                touches_sent=0,
            )
        )
        added += 1
    uow.flush()
    result = MembersAdded(
        added=added,
        already_members=len([p for p in prospects if p.id in existing]),
        skipped_inactive=skipped,
    )
    AuditChain.append(
        uow,
        AuditEventType.CAMPAIGN_MEMBERS_ADDED,
        actor,
        {"campaign_id": str(campaign_id), **result.model_dump()},
    )
    return result


def start_campaign(uow: TenantUnitOfWork, campaign_id: uuid.UUID, actor: Actor) -> CampaignRunInput:
    """Everything a campaign needs before it may run, checked; 409 says what is missing."""
    campaign = _campaign(uow, campaign_id, lock=True)
    settings = CampaignSettings.model_validate(campaign.settings)
    problems = []
    if campaign.status not in STARTABLE:
        problems.append(f"the campaign is {campaign.status}")
    sequence = latest_sequence(uow, campaign_id)
    if sequence is None:
        problems.append("the campaign has no sequence")
    mailboxes = [uow.get(Mailbox, mailbox_id) for mailbox_id in settings.mailbox_ids]
    if not settings.mailbox_ids:
        problems.append("the campaign has no mailbox")
    elif any(m is None or m.status != "active" for m in mailboxes):
        problems.append("a mailbox of the campaign is missing or not active")
    tenant_killed, campaign_killed = kill_switch_state(uow, campaign_id)
    if tenant_killed or campaign_killed:
        problems.append("the kill switch is on")
    pending = int(
        uow.session.scalar(
            select(func.count())
            .select_from(CampaignMember)
            .where(
                CampaignMember.tenant_id == uow.tenant_id,
                CampaignMember.campaign_id == campaign_id,
                CampaignMember.status == "pending",
            )
        )
        or 0
    )
    if pending == 0:
        problems.append("the campaign has no prospects waiting")
    if problems:
        raise CampaignNotStartable("; ".join(problems) + ".", problems=problems)
    assert sequence is not None
    if settings.canary.enabled and campaign.canary_passed_at is None:
        canary_members = uow.session.scalars(
            uow.scoped(CampaignMember)
            .where(CampaignMember.campaign_id == campaign_id, CampaignMember.status == "pending")
            .order_by(CampaignMember.position)
            .limit(settings.canary.size)
        ).all()
        for member in canary_members:
            member.canary = True
    campaign.status = "pilot" if settings.mode.value == "pilot" else "active"
    uow.flush()
    AuditChain.append(
        uow,
        AuditEventType.CAMPAIGN_STARTED,
        actor,
        {
            "campaign_id": str(campaign_id),
            "sequence_id": str(sequence.id),
            "sequence_version": sequence.version,
            "pending": pending,
            "canary": settings.canary.enabled and campaign.canary_passed_at is None,
        },
    )
    return CampaignRunInput(
        tenant_id=uow.tenant_id,
        campaign_id=campaign_id,
        sequence_id=sequence.id,
        canary_done=not settings.canary.enabled or campaign.canary_passed_at is not None,
        canary_observation_seconds=settings.canary.observation_seconds,
    )


def stop_campaign(uow: TenantUnitOfWork, campaign_id: uuid.UUID, actor: Actor) -> list[str]:
    """Stops the campaign; returns the instances of journeys still live, to be told to stop."""
    campaign = _campaign(uow, campaign_id, lock=True)
    campaign.status = "stopped"
    live = uow.session.scalars(
        uow.scoped(CampaignMember).where(
            CampaignMember.campaign_id == campaign_id,
            CampaignMember.status.in_((*LIVE_MEMBER_STATUSES, "pending")),
        )
    ).all()
    instances = [m.instance_id for m in live if m.instance_id]
    for member in live:
        member.status = "stopped"
        member.reason = "the campaign was stopped"
    AuditChain.append(
        uow,
        AuditEventType.CAMPAIGN_STOPPED,
        actor,
        {"campaign_id": str(campaign_id), "journeys_stopped": len(live)},
    )
    return [campaign_instance_id(campaign_id), *instances]


def pause_campaign(uow: TenantUnitOfWork, campaign_id: uuid.UUID, actor: Actor) -> str:
    """Journeys hold before their next send and enrolment waits, until resumed."""
    campaign = _campaign(uow, campaign_id, lock=True)
    if campaign.status not in ("active", "pilot", "paused"):
        raise CampaignNotStartable(f"A {campaign.status} campaign cannot be paused.")
    campaign.status = "paused"
    AuditChain.append(uow, AuditEventType.CAMPAIGN_PAUSED, actor, {"campaign_id": str(campaign_id)})
    return campaign.status


def resume_campaign(uow: TenantUnitOfWork, campaign_id: uuid.UUID, actor: Actor) -> str:
    campaign = _campaign(uow, campaign_id, lock=True)
    if campaign.status != "paused":
        raise CampaignNotStartable(f"A {campaign.status} campaign is not paused.")
    mode = CampaignSettings.model_validate(campaign.settings).mode.value
    campaign.status = "pilot" if mode == "pilot" else "active"
    AuditChain.append(
        uow, AuditEventType.CAMPAIGN_RESUMED, actor, {"campaign_id": str(campaign_id)}
    )
    return campaign.status


def live_instances(uow: TenantUnitOfWork, campaign_id: uuid.UUID | None) -> list[str]:
    """Journeys to signal: "pending" with an instance id is a journey being started
    (`service.assign_instances`), whose stop would otherwise be missed."""
    statement = uow.scoped(CampaignMember).where(
        CampaignMember.status.in_((*LIVE_MEMBER_STATUSES, "pending")),
        CampaignMember.instance_id.is_not(None),
    )
    if campaign_id is not None:
        statement = statement.where(CampaignMember.campaign_id == campaign_id)
    return [m.instance_id for m in uow.session.scalars(statement) if m.instance_id]


def record_canary_outcome(
    tenant_id: uuid.UUID, campaign_id: uuid.UUID, verdict: CanaryVerdict
) -> None:
    with tenant_unit_of_work(tenant_id) as uow:
        campaign = _campaign(uow, campaign_id, lock=True)
        if verdict.escalate:
            campaign.canary_passed_at = datetime.now(UTC)
        else:
            campaign.status = "paused"
        AuditChain.append(
            uow,
            AuditEventType.CANARY_ESCALATED if verdict.escalate else AuditEventType.CANARY_PAUSED,
            ORCHESTRATION_ACTOR,
            {"campaign_id": str(campaign_id), **verdict.model_dump()},
        )


def execution_status(
    uow: TenantUnitOfWork, campaign_ids: Sequence[uuid.UUID]
) -> list[MemberCounts]:
    rows = uow.execute(
        select(CampaignMember.campaign_id, CampaignMember.status, func.count())
        .where(CampaignMember.tenant_id == uow.tenant_id)
        .group_by(CampaignMember.campaign_id, CampaignMember.status)
    ).all()
    counts: dict[uuid.UUID, dict[str, int]] = {}
    for campaign_id, status, count in rows:
        counts.setdefault(campaign_id, {})[status] = int(count)
    campaigns = uow.session.scalars(uow.scoped(Campaign).order_by(Campaign.created_at)).all()
    wanted = set(campaign_ids)
    return [
        MemberCounts(
            campaign_id=c.id,
            status=c.status,
            canary_passed=c.canary_passed_at is not None,
            members=counts.get(c.id, {}),
        )
        for c in campaigns
        if not wanted or c.id in wanted
    ]

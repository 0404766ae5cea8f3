"""A booked meeting and deals: it creates the deal at MEETING_BOOKED (with contact and company
associations) when none exists, advances a positive reply's deal, and never makes a second."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from shared.audit.orm import AuditEvent
from shared.crm.orm import CrmAssociation, CrmObject
from shared.db.unit_of_work import TenantUnitOfWork, tenant_unit_of_work
from shared.deals import service
from shared.deals.schemas import DealStatus, MeetingDeal
from shared.prospects.orm import Company, Prospect
from tests.integration.deals.test_deals import RECIPIENT, FixedModel, _gate, _touch, tenant
from tests.integration.mail.conftest import MailTenant

__all__ = ["tenant"]  # fixture


def _prospect(tenant: MailTenant) -> uuid.UUID:
    with tenant_unit_of_work(tenant.id) as uow:
        company = uow.add(Company(id=uuid.uuid4(), domain="buyer.example", name="Buyer Inc"))
        uow.flush()
        prospect = uow.add(
            Prospect(id=uuid.uuid4(), email=RECIPIENT, first_name="Pat", company_id=company.id)
        )
        uow.flush()
        return prospect.id


def _events(uow: TenantUnitOfWork, event_type: str) -> list[AuditEvent]:
    return list(
        uow.session.scalars(
            select(AuditEvent).where(
                AuditEvent.tenant_id == uow.tenant_id, AuditEvent.event_type == event_type
            )
        )
    )


def _crm_deals(uow: TenantUnitOfWork) -> list[CrmObject]:
    return list(uow.session.scalars(uow.scoped(CrmObject).where(CrmObject.object_type == "deal")))


def test_a_meeting_without_a_deal_creates_and_associates_one(tenant: MailTenant) -> None:
    prospect_id = _prospect(tenant)
    meeting = MeetingDeal(prospect_id=prospect_id, meeting_key="evt-1", correlation_id="j-1")
    with tenant_unit_of_work(tenant.id) as uow:
        deal = service.deal_for_meeting(uow, meeting)
        again = service.deal_for_meeting(uow, meeting)
        assert again.id == deal.id
        assert (deal.status, deal.stage.value, deal.source) == (
            DealStatus.CREATED,
            "MEETING_BOOKED",
            "meeting",
        )
        crm_deals = _crm_deals(uow)
        assert [str(d.id) for d in crm_deals] == [deal.crm_external_id]
        linked = {
            a.to_type
            for a in uow.session.scalars(
                uow.scoped(CrmAssociation).where(CrmAssociation.from_id == crm_deals[0].id)
            )
        }
        assert linked == {"contact", "company"}
        created = _events(uow, "DEAL_CREATED")
        assert [e.correlation_id for e in created] == ["j-1"]
        assert "deal-from-meeting" in created[0].event_json["decision_trace"]["matched_rules"]


def test_a_meeting_advances_the_positive_replys_deal(tenant: MailTenant) -> None:
    prospect_id = _prospect(tenant)
    touch = _touch(tenant, prospect_id)
    with tenant_unit_of_work(tenant.id) as uow:
        replied = service.create_or_update_deal(uow, _gate(uow, touch, FixedModel(0.9)))
    assert replied.stage.value == "POSITIVE_REPLY"
    with tenant_unit_of_work(tenant.id) as uow:
        booked = service.deal_for_meeting(
            uow, MeetingDeal(prospect_id=prospect_id, meeting_key="evt-2")
        )
        assert booked.id == replied.id
        assert booked.stage.value == "MEETING_BOOKED"
        crm_deal = _crm_deals(uow)
        assert len(crm_deal) == 1
        assert crm_deal[0].data["stage_id"] == "MEETING_BOOKED"
        updated = _events(uow, "DEAL_UPDATED")
        assert [e.event_json["stage_from"] for e in updated] == ["POSITIVE_REPLY"]

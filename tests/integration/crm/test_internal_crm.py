"""The internal CRM: idempotent writes, natural keys, associations, deal lookup, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from shared.audit.orm import AuditEvent
from shared.audit.schemas import Actor, ActorType
from shared.crm.port import (
    ContactUpsert,
    DealCreate,
    EmailDirection,
    EmailLog,
    EngagementLog,
    EngagementType,
    MeetingLog,
)
from shared.crm.service import audit_crm_writes, crm_for
from shared.db.unit_of_work import tenant_unit_of_work
from shared.identity.schemas import TenantRead

ACTOR = Actor(type=ActorType.SYSTEM, id="test")
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def test_retried_writes_create_nothing_twice(tenant: TenantRead) -> None:
    with tenant_unit_of_work(tenant.id) as uow:
        crm = crm_for(uow)
        contact = crm.upsert_contact(
            ContactUpsert(email="Ana@Acme.com", first_name="Ana", company_domain="acme.com"),
            idempotency_key="contact:1",
        )
        again = crm.upsert_contact(
            ContactUpsert(email="ana@acme.com", title="CTO"), idempotency_key="contact:1b"
        )
        assert contact.external_id == again.external_id
        assert (contact.created, again.created) == (True, False)
        log = EmailLog(contact.external_id, "Hi", "Body", EmailDirection.OUTBOUND, NOW, "<m1@x>")
        first = crm.log_email(log, idempotency_key="send:c1:p1:t1")
        retry = crm.log_email(log, idempotency_key="send:c1:p1:t1")
        assert first.external_id == retry.external_id
        assert retry.created is False
        assert audit_crm_writes(uow, crm, ACTOR, correlation_id="c1:p1") == 4
        logged = uow.session.scalars(
            select(AuditEvent).where(
                AuditEvent.tenant_id == tenant.id, AuditEvent.event_type == "CRM_LOGGED"
            )
        ).all()
        assert {e.event_json["operation"] for e in logged} == {"upsert", "create"}
        assert all(e.correlation_id == "c1:p1" for e in logged)


def test_a_deal_is_found_through_its_contact_or_company(tenant: TenantRead) -> None:
    with tenant_unit_of_work(tenant.id) as uow:
        crm = crm_for(uow)
        contact = crm.upsert_contact(
            ContactUpsert(email="bo@globex.example", company_domain="globex.example"),
            idempotency_key="c",
        )
        assert (
            crm.find_deal_for_contact_or_company(
                contact_external_id=contact.external_id, company_external_id=None
            )
            is None
        )
        deal = crm.create_deal(
            DealCreate(name="Globex", source="positive_reply", stage_id="POSITIVE_REPLY"),
            idempotency_key="deal:globex",
        )
        crm.associate_deal_to_contact(deal.external_id, contact.external_id, idempotency_key="a1")
        found = crm.find_deal_for_contact_or_company(
            contact_external_id=contact.external_id, company_external_id=None
        )
        assert found is not None
        assert found.external_id == deal.external_id
        crm.update_deal_stage(deal.external_id, "MEETING_BOOKED", idempotency_key="s1")
        crm.log_meeting(
            MeetingLog(
                contact.external_id,
                "Intro",
                NOW,
                NOW + timedelta(minutes=30),
                ("bo@globex.example",),
                deal.external_id,
            ),
            idempotency_key="meeting:1",
        )
        crm.log_engagement(
            EngagementLog(
                EngagementType.NOTE,
                contact.external_id,
                "Positive reply (0.91)",
                NOW,
                deal_external_id=deal.external_id,
            ),
            idempotency_key="note:1",
        )
        crm.update_deal_stage(deal.external_id, "closedlost", idempotency_key="s2")
        assert (
            crm.find_deal_for_contact_or_company(
                contact_external_id=contact.external_id, company_external_id=None
            )
            is None
        ), "closed deals do not count as existing"

"""A reply's deal with HubSpot connected: written to ASEP's records and deals_shadow at once,
queued for HubSpot with the POSITIVE_REPLY intent, and marked as held while no pipeline stage
is mapped for it."""

from __future__ import annotations

from sqlalchemy import select

from shared.crm.integration_orm import CrmPendingWrite
from shared.crm.integrations import HubSpotEnvironment
from shared.db.unit_of_work import tenant_unit_of_work
from shared.deals import service
from shared.deals.schemas import GateOutcome
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.hubspot.environment import fake_environment
from tests.integration.crm.test_hubspot import connect, fake, map_stages
from tests.integration.deals.test_deals import FixedModel, _gate, _touch, tenant
from tests.integration.mail.conftest import MailTenant

__all__ = ["fake", "tenant"]  # fixtures


def _deal_writes(tenant: MailTenant) -> list[CrmPendingWrite]:
    with tenant_unit_of_work(tenant.id) as uow:
        return list(
            uow.session.scalars(
                select(CrmPendingWrite).where(
                    CrmPendingWrite.tenant_id == tenant.id, CrmPendingWrite.object_type == "deal"
                )
            )
        )


def test_a_deal_waits_for_a_stage_mapping_in_hubspot(tenant: MailTenant, fake: FakeHubSpot) -> None:
    env: HubSpotEnvironment = fake_environment(fake)
    connect(tenant.id, env, fake)
    unmapped, mapped = _touch(tenant), _touch(tenant)
    with tenant_unit_of_work(tenant.id) as uow:
        gate = _gate(uow, unmapped, FixedModel(0.9))
        assert gate.outcome is GateOutcome.AUTO
        deal = service.create_or_update_deal(uow, gate)
    assert deal.crm_provider == "hubspot"
    assert deal.reason == "held in HubSpot until a pipeline stage is mapped for POSITIVE_REPLY"
    creates = [w for w in _deal_writes(tenant) if w.operation == "create"]
    assert [w.payload.get("intent") for w in creates] == ["POSITIVE_REPLY"]
    map_stages(tenant.id, env, POSITIVE_REPLY=("default", "appointmentscheduled"))
    with tenant_unit_of_work(tenant.id) as uow:
        other = service.create_or_update_deal(uow, _gate(uow, mapped, FixedModel(0.9)))
    assert other.reason is None

"""Which journeys the kill switch signals (`control.live_instances`)."""

from __future__ import annotations

import uuid

from shared.campaigns.orm import Campaign
from shared.db.server import DatabaseUrls
from shared.db.unit_of_work import tenant_unit_of_work
from shared.execution.control import live_instances
from shared.execution.orm import CampaignMember
from shared.prospects.orm import Prospect
from tests.integration.mail.conftest import make_mail_tenant


def test_a_journey_being_started_is_signalled_and_ended_ones_are_not(
    database: DatabaseUrls,
) -> None:
    tenant = make_mail_tenant("live")
    members = {
        "being-started": ("pending", "i-starting"),
        "not-yet-assigned": ("pending", None),
        "running": ("running", "i-running"),
        "awaiting": ("awaiting_approval", "i-awaiting"),
        "stopped": ("stopped", "i-stopped"),
        "completed": ("completed", "i-completed"),
    }
    with tenant_unit_of_work(tenant.id) as uow:
        campaign = uow.add(Campaign(name="C", settings={}))
        uow.flush()
        campaign_id = campaign.id
        for position, (label, (status, instance_id)) in enumerate(members.items(), start=1):
            prospect = uow.add(Prospect(email=f"{label}-{uuid.uuid4().hex[:6]}@buyer.example"))
            uow.flush()
            uow.add(
                CampaignMember(
                    campaign_id=campaign_id,
                    prospect_id=prospect.id,
                    position=position,
                    status=status,
                    instance_id=instance_id,
                )
            )
    with tenant_unit_of_work(tenant.id) as uow:
        expected = ["i-awaiting", "i-running", "i-starting"]
        assert sorted(live_instances(uow, campaign_id)) == expected
        assert sorted(live_instances(uow, None)) == expected
        assert live_instances(uow, uuid.uuid4()) == []

"""Research gathers sourced facts once; drafts cite them, carry the CAN-SPAM footer, and
count every claim that no evidence supports."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import update

from shared.audit.schemas import Actor, ActorType
from shared.campaigns.schemas import CampaignCreate, SequenceCreate
from shared.campaigns.service import create_campaign, create_sequence
from shared.db.unit_of_work import tenant_unit_of_work
from shared.drafting.schemas import DraftOutput, SenderProfile
from shared.drafting.service import DraftResult, create_draft
from shared.identity.orm import Tenant
from shared.identity.schemas import TenantRead
from shared.llm.offline import OfflineModel
from shared.llm.port import GenerationRequest, GenerationResult, OutputT, Usage
from shared.llm.router import ModelRouter
from shared.prospects.orm import Company, Prospect
from shared.research.enrichment import EnrichmentResearchSource
from shared.research.service import research_prospect

ACTOR = Actor(type=ActorType.SYSTEM, id="test")
SENDER = SenderProfile(
    name="Sam Seller", title="AE", company="Vendor Inc", postal_address="1 Main St, Springfield"
)
UNSUBSCRIBE = "https://asep.example/u/token-123"
SEQUENCE = SequenceCreate.model_validate(
    {
        "name": "one touch",
        "steps": [
            {
                "id": "t1",
                "type": "email",
                "subject": "Idea for {{company_name}}",
                "body": (
                    "Hi {{first_name}},\n\n{{personalization}}\n\n"
                    "Worth a chat about {{initiative}}?"
                ),
            }
        ],
        "variables": ["initiative", "personalization"],
    }
)


@dataclass
class Setup:
    tenant: TenantRead
    campaign_id: uuid.UUID
    sequence_id: uuid.UUID
    prospect_id: uuid.UUID


@pytest.fixture
def setup(tenant: TenantRead) -> Setup:
    with tenant_unit_of_work(tenant.id) as uow:
        uow.execute(
            update(Tenant)
            .where(Tenant.id == tenant.id)
            .values(
                settings={
                    "postal_address": SENDER.postal_address,
                    "prohibited_claims": ["guaranteed"],
                }
            )
        )
        company = uow.add(
            Company(
                domain="acme.com",
                name="Acme",
                enrichment={
                    "funding": {
                        "round": "Series B",
                        "amount": "$30M",
                        "announced_at": "2026-10-01",
                        "source_url": "https://news.example/acme-series-b",
                    },
                    "news": [
                        {"title": "Acme opens Berlin office", "url": "https://news.example/berlin"}
                    ],
                    "hiring": [{"role": "VP Sales"}],
                },
            )
        )
        uow.flush()
        prospect = uow.add(
            Prospect(
                email="ana@acme.com",
                first_name="Ana",
                title="CTO",
                company_id=company.id,
                enrichment={"initiative": "EU expansion"},
            )
        )
        campaign = create_campaign(uow, CampaignCreate(name="c"), ACTOR)
        sequence = create_sequence(uow, campaign.id, SEQUENCE, ACTOR)
        uow.flush()
        ids = (campaign.id, sequence.id, prospect.id)
    return Setup(tenant, *ids)


def _draft(s: Setup, router: ModelRouter) -> DraftResult:
    with tenant_unit_of_work(s.tenant.id) as uow:
        research_prospect(uow, s.prospect_id, [EnrichmentResearchSource()], ACTOR)
        return create_draft(
            uow,
            campaign_id=s.campaign_id,
            sequence_id=s.sequence_id,
            prospect_id=s.prospect_id,
            step_id="t1",
            sender=SENDER,
            unsubscribe_url=UNSUBSCRIBE,
            router=router,
            actor=ACTOR,
        )


def test_research_keeps_each_sourced_fact_once(setup: Setup) -> None:
    with tenant_unit_of_work(setup.tenant.id) as uow:
        first = research_prospect(uow, setup.prospect_id, [EnrichmentResearchSource()], ACTOR)
        again = research_prospect(uow, setup.prospect_id, [EnrichmentResearchSource()], ACTOR)
    assert len(first) == len(again) == 4
    funding = next(e for e in first if e.kind == "funding")
    assert funding.source_url == "https://news.example/acme-series-b"
    assert funding.statement == "Acme raised a $30M Series B"
    hiring = next(e for e in first if e.kind == "hiring")
    assert hiring.source_url.startswith("asep://companies/")


def test_an_offline_draft_is_grounded_and_compliant(setup: Setup) -> None:
    result = _draft(setup, ModelRouter({"offline": OfflineModel()}))
    draft = result.draft
    assert draft.subject == "Idea for Acme"
    assert "EU expansion" in draft.body
    assert "I noticed Acme raised a $30M Series B." in draft.body
    assert UNSUBSCRIBE not in draft.body, "the message builder adds the footer when sending"
    assert draft.evidence_ids
    assert draft.bullets[0]["evidence_ids"]
    assert result.evidence.claims_without_evidence == 0
    content = result.content
    assert (content.missing_unsubscribe, content.missing_postal_address) == (False, False)
    assert content.unresolved_variables == []
    again = _draft(setup, ModelRouter({"offline": OfflineModel()}))
    assert again.draft.id == draft.id
    assert again.created is False


class InventingModel:
    """A model that claims things it was given no evidence for."""

    name = "inventive"

    def generate(self, req: GenerationRequest[OutputT]) -> GenerationResult[OutputT]:
        output = req.output_schema.model_validate(
            {
                "subject": "Congrats on the IPO",
                "body": "Saw your IPO filing. Results are guaranteed.",
                "claims": [
                    {"text": "Acme filed for an IPO", "evidence_ids": []},
                    {"text": "Acme won an award", "evidence_ids": [str(uuid.uuid4())]},
                ],
            }
        )
        return GenerationResult(output, self.name, "v1", Usage())


def test_claims_without_evidence_and_prohibited_claims_are_flagged(setup: Setup) -> None:
    result = _draft(setup, ModelRouter({"offline": InventingModel()}))
    assert result.evidence.claims_without_evidence == 2
    assert result.content.prohibited_claims == ["guaranteed"]
    assert result.draft.evidence_ids == []


def test_draft_output_schema_refuses_extra_fields() -> None:
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        DraftOutput.model_validate({"subject": "s", "body": "b", "send_now": True})


def test_the_spend_ledger_records_each_call_and_sums_this_month(tenant: TenantRead) -> None:
    from decimal import Decimal

    from shared.llm.ledger import DbSpendLedger
    from shared.llm.orm import ModelUsage

    answer = DraftOutput(subject="s", body="b")
    with tenant_unit_of_work(tenant.id) as uow:
        ledger = DbSpendLedger(uow)
        assert ledger.month_to_date(tenant.id) == Decimal("0")
        for cost in ("0.25", "0.125"):
            ledger.record(
                tenant.id,
                GenerationResult(answer, "openai", "m1", Usage(10, 5, Decimal(cost))),
                "draft_email",
            )
        assert ledger.month_to_date(tenant.id) == Decimal("0.375")
        rows = uow.session.scalars(uow.scoped(ModelUsage)).all()
        assert sorted((r.provider, r.task, r.input_tokens, r.cost_usd) for r in rows) == [
            ("openai", "draft_email", 10, Decimal("0.125")),
            ("openai", "draft_email", 10, Decimal("0.25")),
        ]

"""Deal gating on PostgreSQL: the confidence thresholds, the dedupe window, first touches,
sending alone, unsubscribes, approvals, and GET /v1/deals."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from http_api.app import create_app
from shared.approvals.orm import Approval
from shared.audit.orm import AuditEvent
from shared.crm.orm import CrmAssociation, CrmObject
from shared.db.server import DatabaseUrls
from shared.db.unit_of_work import TenantUnitOfWork, tenant_unit_of_work
from shared.deals import service
from shared.deals.orm import DealShadow
from shared.deals.schemas import DealGateResult, DealStatus, GateOutcome
from shared.identity import dev_issuer
from shared.identity.model import Role
from shared.mail import sending
from shared.mail.inbound import ingest_raw
from shared.mail.schemas import SendIntentCreate, SendIntentRead
from shared.policy.schemas import ActionInput, ActionType, PolicyInput, Stage
from shared.policy.service import decide
from shared.replies.classifier import HumanVerdict
from shared.replies.schemas import ReplyLabel
from shared.replies.service import classify_inbound
from tests.integration.mail.conftest import FakeClock, MailTenant, make_mail_tenant
from tests.unit.replies.messages import human

RECIPIENT = "pat@buyer.example"


@dataclass
class FixedModel:
    """A reply model that answers with the label and confidence a test needs."""

    confidence: float
    label: ReplyLabel = ReplyLabel.POSITIVE
    version: str = "fixed-test-model"

    def judge(self, text: str, subject: str) -> HumanVerdict:
        return HumanVerdict(self.label, None, self.confidence, "fixed", [])


@pytest.fixture
def tenant(database: DatabaseUrls) -> MailTenant:
    return make_mail_tenant("deals")


def _touch(
    tenant: MailTenant,
    prospect_id: uuid.UUID | None = None,
    campaign_id: uuid.UUID | None = None,
    step: str = "t1",
) -> SendIntentRead:
    prospect_id = prospect_id or uuid.uuid4()
    with tenant_unit_of_work(tenant.id) as uow:
        intent = sending.record_send_intent(
            uow,
            SendIntentCreate(
                idempotency_key=f"{uuid.uuid4()}:{step}",
                mailbox_id=tenant.mailbox_id,
                recipient=RECIPIENT,
                subject="Quick idea",
                text="Hi Pat",
                campaign_id=campaign_id or uuid.uuid4(),
                prospect_id=prospect_id,
                correlation_id=f"journey-{uuid.uuid4().hex[:8]}",
            ),
        ).intent
    sending.deliver(tenant.id, intent.id, clock=FakeClock())
    return intent


def _reply_raw(touch: SendIntentRead, text: str = "Yes, let's talk next week.") -> bytes:
    return human(
        text,
        headers={"In-Reply-To": str(touch.message_id)},
    ).replace(b"<r1@buyer.example>", f"<{uuid.uuid4().hex}@buyer.example>".encode())


def _gate(
    uow: TenantUnitOfWork, touch: SendIntentRead, model: FixedModel, text: str | None = None
) -> DealGateResult:
    raw = _reply_raw(touch, text) if text else _reply_raw(touch)
    inbound_id = ingest_raw(uow, touch.mailbox_id, raw).inbound.id
    reply = classify_inbound(uow, inbound_id, model=model).reply
    return service.gate_deal(uow, reply.id)


def _count(uow: TenantUnitOfWork, event_type: str) -> int:
    return int(
        uow.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.tenant_id == uow.tenant_id, AuditEvent.event_type == event_type)
        )
        or 0
    )


def _crm_deals(uow: TenantUnitOfWork) -> list[CrmObject]:
    return list(uow.session.scalars(uow.scoped(CrmObject).where(CrmObject.object_type == "deal")))


@pytest.mark.parametrize(
    ("confidence", "outcome"),
    [
        (0.649, GateOutcome.NONE),
        (0.65, GateOutcome.APPROVAL),
        (0.849, GateOutcome.APPROVAL),
        (0.85, GateOutcome.AUTO),
    ],
)
def test_confidence_thresholds(tenant: MailTenant, confidence: float, outcome: GateOutcome) -> None:
    touch = _touch(tenant)
    with tenant_unit_of_work(tenant.id) as uow:
        gate = _gate(uow, touch, FixedModel(confidence))
        assert gate.outcome is outcome
        assert gate.decision_id
        shadow = list(uow.session.scalars(uow.scoped(DealShadow)))
        if outcome is GateOutcome.NONE:
            assert [row.status for row in shadow] == ["blocked"]
            assert shadow[0].reason
            assert "0.65" in shadow[0].reason
            assert _count(uow, "DEAL_CREATION_BLOCKED") == 1
        else:
            assert shadow == []
            assert _count(uow, "DEAL_CREATION_BLOCKED") == 0


def test_a_positive_reply_to_the_first_touch_creates_one_deal_in_the_crm(
    tenant: MailTenant,
) -> None:
    touch = _touch(tenant)
    with tenant_unit_of_work(tenant.id) as uow:
        gate = _gate(uow, touch, FixedModel(0.9))
        assert gate.touch_number == 1
        assert gate.outcome is GateOutcome.AUTO
        deal = service.create_or_update_deal(uow, gate)
        again = service.create_or_update_deal(uow, gate)
    assert again.id == deal.id
    assert deal.status is DealStatus.CREATED
    assert deal.stage.value == "POSITIVE_REPLY"
    assert deal.crm_provider == "internal"
    assert deal.prospect_id == touch.prospect_id
    with tenant_unit_of_work(tenant.id) as uow:
        crm_deals = _crm_deals(uow)
        assert [str(d.id) for d in crm_deals] == [deal.crm_external_id]
        linked = {
            a.to_type
            for a in uow.session.scalars(
                uow.scoped(CrmAssociation).where(CrmAssociation.from_id == crm_deals[0].id)
            )
        }
        assert {"contact", "company"} <= linked
        tasks = uow.session.scalars(uow.scoped(CrmObject).where(CrmObject.object_type == "task"))
        assert len(list(tasks)) == 1
        created = uow.session.scalars(
            select(AuditEvent).where(
                AuditEvent.tenant_id == tenant.id, AuditEvent.event_type == "DEAL_CREATED"
            )
        ).one()
        assert created.correlation_id == touch.correlation_id
        assert created.event_json["decision_trace"]["decision_id"] == gate.decision_id
        assert "deal-positive-reply-auto" in created.event_json["decision_trace"]["matched_rules"]
        assert _count(uow, "CRM_LOGGED") >= 4


def test_a_hundred_positive_replies_from_one_contact_make_one_deal(tenant: MailTenant) -> None:
    prospect_id = uuid.uuid4()
    campaign_id = uuid.uuid4()
    touch = _touch(tenant, prospect_id, campaign_id)
    outcomes: list[GateOutcome] = []
    with tenant_unit_of_work(tenant.id) as uow:
        for n in range(100):
            gate = _gate(uow, touch, FixedModel(0.95), f"Yes, interested ({n}). Call me.")
            outcomes.append(gate.outcome)
            if gate.outcome in (GateOutcome.AUTO, GateOutcome.UPDATE):
                service.create_or_update_deal(uow, gate)
    assert outcomes[0] is GateOutcome.AUTO
    assert set(outcomes[1:]) == {GateOutcome.UPDATE}
    with tenant_unit_of_work(tenant.id) as uow:
        created = list(
            uow.session.scalars(uow.scoped(DealShadow).where(DealShadow.status == "created"))
        )
        assert len(created) == 1
        assert len(_crm_deals(uow)) == 1
        assert _count(uow, "DEAL_CREATED") == 1
        assert _count(uow, "DEAL_UPDATED") == 99


def test_the_dedupe_window_is_the_tenants_setting(tenant: MailTenant) -> None:
    prospect_id = uuid.uuid4()
    touch = _touch(tenant, prospect_id)
    with tenant_unit_of_work(tenant.id) as uow:
        first = _gate(uow, touch, FixedModel(0.9))
        service.create_or_update_deal(uow, first)
        row = uow.session.scalars(uow.scoped(DealShadow)).one()
        row.created_at = row.created_at.replace(year=row.created_at.year - 1)
    tenant.set_settings(dedupe_window_days=7)
    with tenant_unit_of_work(tenant.id) as uow:
        second = _gate(uow, touch, FixedModel(0.9), "Still keen, let's meet.")
        assert second.outcome is GateOutcome.AUTO, "the old deal is outside the 7-day window"
        service.create_or_update_deal(uow, second)
        assert len(_crm_deals(uow)) == 2


def test_sending_alone_never_creates_a_deal(tenant: MailTenant) -> None:
    _touch(tenant)  # recorded and delivered: a touch went out
    with tenant_unit_of_work(tenant.id) as uow:
        for action in (ActionType.DRAFT, ActionType.SEND):
            decision = decide(
                uow,
                PolicyInput(action=ActionInput(type=action, stage=Stage.SEND)),
                service.DEALS_ACTOR,
            )
            assert not decision.deal_create_allowed
            assert "deal-never-from-sending" in {r.rule_id for r in decision.reasons}
        assert list(uow.session.scalars(uow.scoped(DealShadow))) == []
        assert _crm_deals(uow) == []


def test_unsubscribe_and_ooo_never_create_a_deal(tenant: MailTenant) -> None:
    touches = {label: _touch(tenant) for label in (ReplyLabel.UNSUBSCRIBE, ReplyLabel.OOO)}
    with tenant_unit_of_work(tenant.id) as uow:
        for label, touch in touches.items():
            gate = _gate(uow, touch, FixedModel(0.99, label))
            assert gate.outcome is GateOutcome.NONE
            assert "deal-never-on-negative-signals" in gate.matched_rules
        assert _crm_deals(uow) == []


def test_a_medium_confidence_reply_waits_for_approval_then_creates_or_holds(
    tenant: MailTenant,
) -> None:
    approved_touch, rejected_touch = _touch(tenant), _touch(tenant)
    with tenant_unit_of_work(tenant.id) as uow:
        gate = _gate(uow, approved_touch, FixedModel(0.7))
        approval_id = service.request_deal_approval(uow, gate, "deal:test")
        assert service.request_deal_approval(uow, gate, "deal:test") == approval_id
        approval = uow.get(Approval, approval_id)
        assert approval is not None
        assert approval.action_kind == "deal"
        assert approval.decision_trace["outcome"] == "approval"
        pending = service.list_deals(uow, status=DealStatus.PENDING_APPROVAL).items
        assert [d.approval_id for d in pending] == [approval_id]
        deal = service.create_or_update_deal(uow, gate, approval_id=approval_id)
        assert deal.status is DealStatus.CREATED
        assert deal.approval_id == approval_id
        other = _gate(uow, rejected_touch, FixedModel(0.7))
        service.request_deal_approval(uow, other, "deal:test2")
        held = service.hold_deal(uow, other, "the deal was rejected")
        assert held.status is DealStatus.HELD
        assert held.reason == "the deal was rejected"
        assert len(_crm_deals(uow)) == 1
        assert _count(uow, "DEAL_CREATION_BLOCKED") == 1


@pytest.fixture(scope="module")
def client(database: DatabaseUrls) -> Iterator[TestClient]:
    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def test_get_deals_lists_the_tenants_deals(client: TestClient, tenant: MailTenant) -> None:
    first, second = _touch(tenant), _touch(tenant)
    with tenant_unit_of_work(tenant.id) as uow:
        gate = _gate(uow, first, FixedModel(0.9))
        deal = service.create_or_update_deal(uow, gate)
        _gate(uow, second, FixedModel(0.3))
    slug = tenant.tenant.slug
    viewer = {"Authorization": f"Bearer {dev_issuer.dev_token(slug, Role.OPERATOR)}"}
    page = client.get("/v1/deals", headers=viewer, params={"limit": 1})
    assert page.status_code == 200, page.text
    rest = client.get("/v1/deals", headers=viewer, params={"cursor": page.json()["next_cursor"]})
    items = page.json()["items"] + rest.json()["items"]
    assert rest.json()["next_cursor"] is None
    assert {(item["status"], item["id"] == str(deal.id)) for item in items} == {
        ("created", True),
        ("blocked", False),
    }
    created = client.get("/v1/deals", headers=viewer, params={"status": "created"}).json()
    assert len(created["items"]) == 1
    other = make_mail_tenant("deals-other")
    foreign = {"Authorization": f"Bearer {dev_issuer.dev_token(other.tenant.slug, Role.OPERATOR)}"}
    assert client.get("/v1/deals", headers=foreign).json()["items"] == []
    assert client.get("/v1/deals").status_code == 401

"""The HubSpot provider end to end against the fake HubSpot: connect, push under faults,
crash recovery, revoked accounts, stage mappings, webhooks and the API."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select, text

from http_api.app import create_app
from http_api.hooks import crm_event_queue, hook_settings
from http_api.integrations import hubspot_environment
from shared.audit.schemas import Actor, ActorType
from shared.config import get_settings
from shared.crm import integrations, webhooks
from shared.crm.hubspot import HubSpotCrm, HubSpotPusher
from shared.crm.hubspot_api import MARKER_PROPERTY
from shared.crm.integration_orm import CrmIntegration, CrmMapping, CrmPendingWrite
from shared.crm.integrations import HubSpotEnvironment, InvalidOAuthState, InvalidStageMapping
from shared.crm.orm import CrmObject
from shared.crm.port import (
    CompanyUpsert,
    ContactUpsert,
    CrmRejected,
    DealCreate,
    DealStageIntent,
    EmailDirection,
    EmailLog,
    EngagementLog,
    EngagementType,
    MeetingLog,
    TaskCreate,
)
from shared.crm.schemas import StageMapping, StageTarget
from shared.crm.service import audit_crm_writes, crm_for
from shared.db.server import DatabaseUrls
from shared.db.unit_of_work import tenant_unit_of_work
from shared.deliverability import suppression
from shared.identity import dev_issuer
from shared.identity.model import Role
from shared.identity.schemas import TenantRead
from shared.queue.port import InMemoryQueueSender
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.hubspot.environment import fake_environment

ACTOR = Actor(type=ActorType.SYSTEM, id="test")
NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
ENGAGEMENT_TYPES = ("emails", "notes", "tasks", "meetings")


@pytest.fixture
def fake() -> Iterator[FakeHubSpot]:
    server = FakeHubSpot(
        max_requests=190, window_seconds=1.0, portal_id=random.randint(10**6, 10**9)
    )
    server.start()
    yield server
    server.stop()


def connect(tenant_id: uuid.UUID, env: HubSpotEnvironment, fake: FakeHubSpot) -> int:
    with tenant_unit_of_work(tenant_id) as uow:
        started = integrations.start_connect(uow, env, created_by="test")
    state = parse_qs(urlparse(started.authorize_url).query)["state"][0]
    with tenant_unit_of_work(tenant_id) as uow:
        result = integrations.complete_connect(uow, env, fake.authorize(), state, ACTOR)
    assert result.connected, result.error
    return result.replayed_writes


def pending(tenant_id: uuid.UUID) -> dict[str, int]:
    with tenant_unit_of_work(tenant_id) as uow:
        rows = uow.execute(
            select(CrmPendingWrite.status, func.count())
            .where(CrmPendingWrite.tenant_id == tenant_id)
            .group_by(CrmPendingWrite.status)
        ).all()
    return dict(rows)


def push_all(tenant_id: uuid.UUID, env: HubSpotEnvironment, rounds: int = 8) -> None:
    for _ in range(rounds):
        HubSpotPusher(tenant_id, env, lease=timedelta(0)).push()
        if not pending(tenant_id).get("pending"):
            return


def map_stages(tenant_id: uuid.UUID, env: HubSpotEnvironment, **stages: tuple[str, str]) -> None:
    mapping = StageMapping(
        stages={
            DealStageIntent(k): StageTarget(pipeline_id=p, stage_id=s)
            for k, (p, s) in stages.items()
        }
    )
    with tenant_unit_of_work(tenant_id) as uow:
        integrations.put_stage_mapping(uow, env, mapping, ACTOR)


def test_connect_seals_tokens_and_states_are_single_use_and_expire(
    tenant: TenantRead, fake: FakeHubSpot
) -> None:
    env = fake_environment(fake)
    connect(tenant.id, env, fake)
    with tenant_unit_of_work(tenant.id) as uow:
        integration = uow.session.scalars(uow.scoped(CrmIntegration)).one()
        sealed = json.dumps(integration.tokens)
        assert integration.status == "connected"
        assert integration.portal_id == str(fake.portal_id)
        assert not any(t in sealed for t in fake.tokens)
        assert isinstance(crm_for(uow), HubSpotCrm)
        started = integrations.start_connect(uow, env, created_by="test")
    state = parse_qs(urlparse(started.authorize_url).query)["state"][0]
    with tenant_unit_of_work(tenant.id) as uow:
        assert integrations.complete_connect(uow, env, fake.authorize(), state, ACTOR).connected
    with tenant_unit_of_work(tenant.id) as uow, pytest.raises(InvalidOAuthState):
        integrations.complete_connect(uow, env, fake.authorize(), state, ACTOR)
    forged = f"{tenant.id}.not-a-state-we-issued"
    with tenant_unit_of_work(tenant.id) as uow, pytest.raises(InvalidOAuthState):
        integrations.complete_connect(uow, env, fake.authorize(), forged, ACTOR)
    later = HubSpotEnvironment(
        env.settings,
        env.wrapper,
        env.oauth_factory,
        env.api_factory,
        clock=lambda: datetime.now(UTC) + timedelta(hours=1),
    )
    with tenant_unit_of_work(tenant.id) as uow:
        started = integrations.start_connect(uow, env, created_by="test")
    stale = parse_qs(urlparse(started.authorize_url).query)["state"][0]
    with tenant_unit_of_work(tenant.id) as uow, pytest.raises(InvalidOAuthState):
        integrations.complete_connect(uow, later, fake.authorize(), stale, ACTOR)


def test_the_ports_connection_methods_connect_refresh_and_refuse_a_foreign_state(
    tenant: TenantRead, fake: FakeHubSpot
) -> None:
    env = fake_environment(fake)
    with tenant_unit_of_work(tenant.id) as uow:
        started = HubSpotCrm(uow, env).connect()
    assert started is not None
    assert parse_qs(urlparse(started.authorize_url).query)["state"] == [started.state]
    with tenant_unit_of_work(tenant.id) as uow:
        crm = HubSpotCrm(uow, env)
        crm.exchange_code_for_token(fake.authorize(), started.state)
        crm.refresh_token_if_needed()
        assert integrations.is_connected(uow)
    with tenant_unit_of_work(tenant.id) as uow, pytest.raises(CrmRejected):
        HubSpotCrm(uow, env).exchange_code_for_token(fake.authorize(), f"{uuid.uuid4()}.x")


def test_a_campaigns_writes_land_once_under_20_percent_faults(
    tenant: TenantRead, fake: FakeHubSpot
) -> None:
    env = fake_environment(fake)
    connect(tenant.id, env, fake)
    map_stages(tenant.id, env, POSITIVE_REPLY=("outbound", "replied"))
    fake.fault_rate = 0.2
    with tenant_unit_of_work(tenant.id) as uow:
        crm = crm_for(uow)
        contacts = [
            crm.upsert_contact(
                ContactUpsert(
                    email=f"p{i}@c{i % 50}.example",
                    first_name=f"P{i}",
                    company_domain=f"c{i % 50}.example",
                ),
                idempotency_key=f"contact:{i}",
            )
            for i in range(500)
        ]
        deals = []
        for d in range(100):
            deal = crm.create_deal(
                DealCreate(name=f"Deal {d}", source="reply", intent=DealStageIntent.POSITIVE_REPLY),
                idempotency_key=f"deal:{d}",
            )
            company = crm.upsert_company(
                CompanyUpsert(domain=f"c{d % 50}.example"), idempotency_key=f"deal:{d}:co"
            )
            crm.associate_deal_to_contact(
                deal.external_id, contacts[d].external_id, idempotency_key=f"deal:{d}:contact"
            )
            crm.associate_deal_to_company(
                deal.external_id, company.external_id, idempotency_key=f"deal:{d}:company"
            )
            deals.append(deal)
        for e in range(1000):
            contact = contacts[e % 500].external_id
            key = f"touch:{e}"
            match e % 4:
                case 0:
                    crm.log_email(
                        EmailLog(
                            contact, f"S{e}", "Body", EmailDirection.OUTBOUND, NOW, f"<{e}@x>"
                        ),
                        idempotency_key=key,
                    )
                case 1:
                    crm.log_engagement(
                        EngagementLog(
                            EngagementType.NOTE,
                            contact,
                            "Replied",
                            NOW,
                            deal_external_id=deals[e % 100].external_id,
                        ),
                        idempotency_key=key,
                    )
                case 2:
                    crm.create_task(
                        TaskCreate(contact, "Follow up", NOW + timedelta(days=1)),
                        idempotency_key=key,
                    )
                case _:
                    crm.log_meeting(
                        MeetingLog(
                            contact,
                            "Intro",
                            NOW,
                            NOW + timedelta(minutes=30),
                            deal_external_id=deals[e % 100].external_id,
                        ),
                        idempotency_key=key,
                    )
        audit_crm_writes(uow, crm, ACTOR)
    push_all(tenant.id, env)
    assert pending(tenant.id) == {"done": sum(pending(tenant.id).values())}
    assert fake.stats.injected_429 > 0
    assert fake.stats.injected_5xx > 0
    assert fake.stats.applied_then_5xx > 0
    assert (fake.count("contacts"), fake.count("companies"), fake.count("deals")) == (500, 50, 100)
    assert sum(fake.count(t) for t in ENGAGEMENT_TYPES) == 1000
    assert fake.duplicates("contacts", "email") == 0
    assert all(
        fake.duplicates(t, MARKER_PROPERTY) == 0 for t in ("companies", "deals", *ENGAGEMENT_TYPES)
    )
    stages = {o["properties"]["dealstage"] for o in fake.objects["deals"].values()}
    assert stages == {"replied"}
    deal_links = sum(
        len(v) for (f, _, t), v in fake.associations.items() if (f, t) == ("deals", "contacts")
    )
    assert deal_links == 100
    with tenant_unit_of_work(tenant.id) as uow:
        mapped = uow.session.scalar(
            select(func.count()).select_from(CrmMapping).where(CrmMapping.tenant_id == tenant.id)
        )
        logged = uow.execute(
            text(
                "SELECT count(*) FROM audit_events WHERE tenant_id = :t "
                "AND event_type = 'CRM_LOGGED' "
                "AND event_json->>'operation' LIKE 'hubspot.%'"
            ),
            {"t": tenant.id},
        ).scalar_one()
    assert mapped == 500 + 50 + 100 + 1000
    assert logged >= 1650


def test_a_crash_between_the_hubspot_call_and_our_commit_creates_nothing_twice(
    tenant: TenantRead, fake: FakeHubSpot
) -> None:
    env = fake_environment(fake)
    connect(tenant.id, env, fake)
    with tenant_unit_of_work(tenant.id) as uow:
        crm = crm_for(uow)
        for d in range(30):
            crm.create_deal(
                DealCreate(
                    name=f"D{d}", source="reply", pipeline_id="default", stage_id="qualifiedtobuy"
                ),
                idempotency_key=f"d{d}",
            )

    def crash() -> None:
        raise RuntimeError("worker killed after HubSpot answered")

    first = HubSpotPusher(tenant.id, env, lease=timedelta(0))
    first.before_record = crash
    with pytest.raises(RuntimeError):
        first.push()
    assert fake.count("deals") == 30
    assert pending(tenant.id) == {"pending": 30}
    report = HubSpotPusher(tenant.id, env, lease=timedelta(0)).push()
    assert report.reconciled == 30
    assert report.done == 30
    assert fake.count("deals") == 30
    assert fake.duplicates("deals", MARKER_PROPERTY) == 0


def test_a_revoked_account_holds_writes_and_replays_them_on_reconnect(
    tenant: TenantRead, fake: FakeHubSpot
) -> None:
    env = fake_environment(fake)
    connect(tenant.id, env, fake)
    fake.revoke()
    with tenant_unit_of_work(tenant.id) as uow:
        crm = crm_for(uow)
        for i in range(5):
            contact = crm.upsert_contact(
                ContactUpsert(email=f"r{i}@rev.example"), idempotency_key=f"r{i}"
            )
            crm.log_email(
                EmailLog(contact.external_id, "S", "B", EmailDirection.OUTBOUND, NOW, f"<r{i}@x>"),
                idempotency_key=f"r{i}:mail",
            )
    HubSpotPusher(tenant.id, env, lease=timedelta(0)).push()
    assert pending(tenant.id) == {"held": 10}
    with tenant_unit_of_work(tenant.id) as uow:
        status = integrations.status(uow)
    assert status.status == "revoked"
    assert not status.connected
    assert status.last_error
    assert [h.count for h in status.held_writes] == [10]
    assert status.held_writes[0].reason.startswith("not_connected")
    assert fake.count("contacts") == 0
    assert connect(tenant.id, env, fake) == 10
    push_all(tenant.id, env)
    assert pending(tenant.id) == {"done": 10}
    assert (fake.count("contacts"), fake.count("emails")) == (5, 5)


def test_a_deal_without_a_stage_mapping_is_held_with_a_reason(
    tenant: TenantRead, fake: FakeHubSpot
) -> None:
    env = fake_environment(fake)
    connect(tenant.id, env, fake)
    with tenant_unit_of_work(tenant.id) as uow:
        crm_for(uow).create_deal(
            DealCreate(name="Booked", source="meeting", intent=DealStageIntent.MEETING_BOOKED),
            idempotency_key="booked",
        )
    HubSpotPusher(tenant.id, env, lease=timedelta(0)).push()
    with tenant_unit_of_work(tenant.id) as uow:
        held = uow.session.scalars(uow.scoped(CrmPendingWrite)).one()
    assert held.status == "held"
    assert held.reason is not None
    assert held.reason.startswith("no_stage_mapping")
    assert "MEETING_BOOKED" in held.reason
    assert fake.count("deals") == 0
    with pytest.raises(InvalidStageMapping, match="has no stage 'nope'"):
        map_stages(tenant.id, env, MEETING_BOOKED=("default", "nope"))
    map_stages(tenant.id, env, MEETING_BOOKED=("outbound", "meeting"))
    push_all(tenant.id, env)
    assert [o["properties"]["dealstage"] for o in fake.objects["deals"].values()] == ["meeting"]


def _signed(secret: str, url: str, body: bytes, *, age_ms: int = 0) -> dict[str, str]:
    timestamp = str(int(time.time() * 1000) - age_ms)
    return {
        "X-HubSpot-Signature-v3": webhooks.sign_v3(secret, "POST", url, body, timestamp),
        "X-HubSpot-Request-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def test_webhooks_refuse_forged_stale_and_replayed_requests_and_apply_each_event_once(
    tenant: TenantRead, fake: FakeHubSpot, database: DatabaseUrls
) -> None:
    env = fake_environment(fake)
    connect(tenant.id, env, fake)
    with tenant_unit_of_work(tenant.id) as uow:
        crm = crm_for(uow)
        kept = crm.upsert_contact(ContactUpsert(email="opt@out.example"), idempotency_key="c1")
        gone = crm.upsert_contact(ContactUpsert(email="gone@out.example"), idempotency_key="c2")
        deal = crm.create_deal(
            DealCreate(name="D", source="reply", pipeline_id="default", stage_id="qualifiedtobuy"),
            idempotency_key="d1",
        )
    push_all(tenant.id, env)
    with tenant_unit_of_work(tenant.id) as uow:
        ids = {
            str(m.internal_id): m.external_id for m in uow.session.scalars(uow.scoped(CrmMapping))
        }
    secret = fake.client_secret
    settings = get_settings().model_copy(update={"hubspot_client_secret": SecretStr(secret)})
    queue = InMemoryQueueSender()
    app = create_app()
    app.dependency_overrides[crm_event_queue] = lambda: queue
    app.dependency_overrides[hook_settings] = lambda: settings
    url = settings.public_base_url.rstrip("/") + "/hooks/hubspot"
    portal = fake.portal_id
    events = [
        {
            "eventId": 11,
            "portalId": portal,
            "subscriptionType": "contact.propertyChange",
            "propertyName": "hs_email_optout",
            "propertyValue": "true",
            "objectId": int(ids[kept.external_id]),
            "occurredAt": 1,
            "attemptNumber": 0,
        },
        {
            "eventId": 12,
            "portalId": portal,
            "subscriptionType": "deal.propertyChange",
            "propertyName": "dealstage",
            "propertyValue": "closedwon",
            "objectId": int(ids[deal.external_id]),
            "occurredAt": 1,
            "attemptNumber": 0,
        },
        {
            "eventId": 13,
            "portalId": portal,
            "subscriptionType": "contact.deletion",
            "objectId": int(ids[gone.external_id]),
            "occurredAt": 1,
            "attemptNumber": 0,
        },
    ]
    body = json.dumps(events).encode()
    with TestClient(app, raise_server_exceptions=False) as client:
        good = _signed(secret, url, body)
        assert client.post("/hooks/hubspot", content=body, headers=good).status_code == 204
        bad = [
            good,  # the exact request again: a replay
            {
                **good,
                "X-HubSpot-Signature-v3": webhooks.sign_v3(
                    "not-the-secret", "POST", url, body, good["X-HubSpot-Request-Timestamp"]
                ),
            },
            _signed(secret, url, body, age_ms=6 * 60 * 1000),
            {"Content-Type": "application/json"},
        ]
        refused = [client.post("/hooks/hubspot", content=body, headers=h).status_code for h in bad]
        tampered = body.replace(b"closedwon", b"closedlost")
        refused.append(client.post("/hooks/hubspot", content=tampered, headers=good).status_code)
        assert refused == [401] * 5
        retry = _signed(secret, url, body, age_ms=1)  # HubSpot's own retry: signed anew
        assert client.post("/hooks/hubspot", content=body, headers=retry).status_code == 204
    messages = queue.sent[webhooks.CRM_EVENTS_QUEUE]
    assert len(messages) == 3
    outcomes = [webhooks.process_message(m.body) for m in messages + messages]
    assert outcomes == [
        "unsubscribed",
        "deal_stage_updated",
        "suppressed",
        "duplicate",
        "duplicate",
        "duplicate",
    ]
    with tenant_unit_of_work(tenant.id) as uow:
        assert suppression.check(uow, "opt@out.example").suppressed
        assert suppression.check(uow, "gone@out.example").suppressed
        stored = uow.get(CrmObject, uuid.UUID(deal.external_id))
        assert stored is not None
        assert stored.data["stage_id"] == "closedwon"
        updates = uow.execute(
            text(
                "SELECT count(*) FROM audit_events WHERE tenant_id = :t "
                "AND event_type = 'DEAL_UPDATED'"
            ),
            {"t": tenant.id},
        ).scalar_one()
    assert updates == 1
    assert webhooks.webhook_refusals.counts["hubspot_webhook_replay"] >= 1
    assert webhooks.webhook_refusals.counts["hubspot_webhook_signature"] >= 2
    assert webhooks.webhook_refusals.counts["hubspot_webhook_stale"] >= 1


def test_integration_api_connect_callback_status_and_mapping(
    tenant: TenantRead, fake: FakeHubSpot, database: DatabaseUrls
) -> None:
    env = fake_environment(fake)
    app = create_app()
    app.dependency_overrides[hubspot_environment] = lambda: env
    headers = {"Authorization": f"Bearer {dev_issuer.dev_token(tenant.slug, Role.ADMIN)}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/v1/integrations/status", headers=headers).json()["connected"] is False
        started = client.post("/v1/integrations/hubspot/connect", headers=headers)
        assert started.status_code == 200, started.text
        query = parse_qs(urlparse(started.json()["authorize_url"]).query)
        assert "crm.objects.deals.write" in query["scope"][0].split()
        state = query["state"][0]
        callback = client.get(
            "/v1/integrations/hubspot/callback", params={"code": fake.authorize(), "state": state}
        )
        assert callback.status_code == 200
        assert callback.json()["connected"] is True
        again = client.get(
            "/v1/integrations/hubspot/callback", params={"code": fake.authorize(), "state": state}
        )
        assert again.status_code == 422
        status = client.get("/v1/integrations/status", headers=headers).json()
        assert status["connected"]
        assert status["portal_id"] == str(fake.portal_id)
        bad = {"stages": {"QUALIFIED": {"pipeline_id": "nope", "stage_id": "x"}}}
        assert (
            client.put("/v1/integrations/crm/mapping", json=bad, headers=headers).status_code == 422
        )
        good = {"stages": {"QUALIFIED": {"pipeline_id": "default", "stage_id": "qualifiedtobuy"}}}
        assert (
            client.put("/v1/integrations/crm/mapping", json=good, headers=headers).status_code
            == 200
        )
        assert client.get("/v1/integrations/crm/mapping", headers=headers).json() == good
        viewer = {"Authorization": f"Bearer {dev_issuer.dev_token(tenant.slug, Role.AUDITOR)}"}
        assert (
            client.put("/v1/integrations/crm/mapping", json=good, headers=viewer).status_code == 403
        )

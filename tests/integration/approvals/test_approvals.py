"""Approvals: requests are idempotent, decisions are locked, audited, delivered after commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from http_api.app import create_app
from shared.approvals import service
from shared.approvals.port import InMemoryApprovalDecisionSink
from shared.approvals.schemas import ApprovalRequest, ApprovalStatus, ApproveBody
from shared.audit.schemas import Actor, ActorType
from shared.db.server import DatabaseUrls
from shared.db.unit_of_work import tenant_unit_of_work
from shared.identity import repository as identity_repository
from shared.identity.model import Role
from shared.identity.schemas import TenantRead
from tests.integration.deliverability.conftest import audit_events, auth, new_tenant

ORCHESTRATOR = Actor(type=ActorType.SYSTEM, id="prospect_sequence")


@pytest.fixture(scope="module")
def app(database: DatabaseUrls) -> FastAPI:
    return create_app()


@pytest.fixture
def sink(app: FastAPI) -> Iterator[InMemoryApprovalDecisionSink]:
    fake = InMemoryApprovalDecisionSink()
    app.state.approval_decision_sink = fake
    yield fake
    del app.state.approval_decision_sink


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def tenant(client: TestClient) -> TenantRead:
    return new_tenant("appr")


def _request(tenant: TenantRead, actor: Actor = ORCHESTRATOR, **fields: object) -> uuid.UUID:
    body = {
        "action_kind": "send",
        "action_id": f"send-{uuid.uuid4()}",
        "orchestration_instance_id": "campaign:prospect",
        "summary": "First touch to Jane",
        "preview": {"subject": "Hello", "body": "Hi Jane"},
        "evidence": [{"fact": "Raised a Series B", "source": "https://news.example/b"}],
        "decision_trace": {"rules": ["first-touch-approval"]},
        **fields,
    }
    with tenant_unit_of_work(tenant.id) as uow:
        return service.request_approval(uow, ApprovalRequest.model_validate(body), actor).id


def test_asking_twice_for_one_action_returns_the_first_request(tenant: TenantRead) -> None:
    first = _request(tenant, action_id="send-fixed")
    assert _request(tenant, action_id="send-fixed") == first
    assert len(audit_events(tenant.id, "APPROVAL_REQUESTED")) == 1


def test_approve_shows_evidence_records_decider_and_delivers_after_commit(
    client: TestClient, tenant: TenantRead, sink: InMemoryApprovalDecisionSink
) -> None:
    approval_id = _request(tenant)
    detail = client.get(f"/v1/approvals/{approval_id}", headers=auth(tenant, Role.OPERATOR))
    assert detail.status_code == 200
    assert detail.json()["evidence"][0]["fact"] == "Raised a Series B"
    assert detail.json()["decision_trace"] == {"rules": ["first-touch-approval"]}
    approved = client.post(
        f"/v1/approvals/{approval_id}/approve",
        json={"reason": "looks right"},
        headers=auth(tenant, Role.MANAGER),
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"
    assert approved.json()["decided_by"]["type"] == "user"
    (delivered,) = sink.delivered
    assert delivered.approval_id == approval_id
    assert delivered.orchestration_instance_id == "campaign:prospect"
    assert delivered.decision.status is ApprovalStatus.APPROVED
    again = client.post(
        f"/v1/approvals/{approval_id}/reject",
        json={"reason": "changed my mind"},
        headers=auth(tenant, Role.MANAGER),
    )
    assert again.status_code == 409
    assert again.json()["code"] == "approval_not_pending"
    assert len(sink.delivered) == 1
    (granted,) = audit_events(tenant.id, "APPROVAL_GRANTED")
    assert granted["approval_id"] == str(approval_id)


def test_nothing_is_delivered_when_the_decision_rolls_back(tenant: TenantRead) -> None:
    approval_id = _request(tenant)
    sink = InMemoryApprovalDecisionSink()

    def decide_then_fail() -> None:
        with tenant_unit_of_work(tenant.id) as uow:
            service.approve(uow, approval_id, ApproveBody(), ORCHESTRATOR, sink)
            raise RuntimeError("the edge failed after the decision")

    with pytest.raises(RuntimeError):
        decide_then_fail()
    assert sink.delivered == []
    with tenant_unit_of_work(tenant.id) as uow:
        assert service.get_approval(uow, approval_id).status is ApprovalStatus.PENDING


def test_reject_needs_a_reason(
    client: TestClient, tenant: TenantRead, sink: InMemoryApprovalDecisionSink
) -> None:
    approval_id = _request(tenant)
    manager = auth(tenant, Role.MANAGER)
    for body in ({}, {"reason": ""}):
        missing = client.post(f"/v1/approvals/{approval_id}/reject", json=body, headers=manager)
        assert missing.status_code == 422
    rejected = client.post(
        f"/v1/approvals/{approval_id}/reject", json={"reason": "off-brand"}, headers=manager
    )
    assert rejected.status_code == 200
    assert rejected.json()["reason"] == "off-brand"
    assert sink.delivered[0].decision.status is ApprovalStatus.REJECTED
    assert audit_events(tenant.id, "APPROVAL_REJECTED")[0]["reason"] == "off-brand"


def test_operators_read_but_cannot_decide(client: TestClient, tenant: TenantRead) -> None:
    approval_id = _request(tenant)
    operator = auth(tenant, Role.OPERATOR)
    assert client.get("/v1/approvals", headers=operator).status_code == 200
    assert (
        client.post(f"/v1/approvals/{approval_id}/approve", json={}, headers=operator).status_code
        == 403
    )


def test_four_eyes_refuses_the_requester(
    client: TestClient, tenant: TenantRead, sink: InMemoryApprovalDecisionSink
) -> None:
    with tenant_unit_of_work(tenant.id) as uow:
        row = identity_repository.get_current_tenant(uow)
        assert row is not None
        row.settings = {"approvals_four_eyes": True}
    manager = auth(tenant, Role.MANAGER)
    users = client.get("/v1/users", headers=auth(tenant, Role.OWNER)).json()
    (manager_user,) = [u for u in users if u["role"] == "manager"]
    requester = Actor(type=ActorType.USER, id=manager_user["id"])
    approval_id = _request(tenant, requester)
    refused = client.post(f"/v1/approvals/{approval_id}/approve", json={}, headers=manager)
    assert refused.status_code == 403
    assert refused.json()["code"] == "four_eyes_required"
    other = client.post(
        f"/v1/approvals/{approval_id}/approve", json={}, headers=auth(tenant, Role.OWNER)
    )
    assert other.status_code == 200


def test_expiry(tenant: TenantRead) -> None:
    sink = InMemoryApprovalDecisionSink()
    due = _request(tenant, ttl_seconds=60)
    later = _request(tenant, ttl_seconds=3600)
    in_two_minutes = datetime.now(UTC) + timedelta(minutes=2)
    with tenant_unit_of_work(tenant.id) as uow, pytest.raises(service.ApprovalExpired):
        service.approve(uow, due, ApproveBody(), ORCHESTRATOR, sink, clock=lambda: in_two_minutes)
    with tenant_unit_of_work(tenant.id) as uow:
        expired = service.expire_due_approvals(
            uow, sink, ORCHESTRATOR, clock=lambda: in_two_minutes
        )
    assert expired == 1
    with tenant_unit_of_work(tenant.id) as uow:
        assert service.get_approval(uow, due).status is ApprovalStatus.EXPIRED
        assert service.get_approval(uow, later).status is ApprovalStatus.PENDING
        assert (
            service.expire_due_approvals(uow, sink, ORCHESTRATOR, clock=lambda: in_two_minutes) == 0
        )
    assert [d.approval_id for d in sink.delivered] == [due]
    assert sink.delivered[0].decision.status is ApprovalStatus.EXPIRED
    assert len(audit_events(tenant.id, "APPROVAL_EXPIRED")) == 1


def test_list_filters_and_pages_newest_first(client: TestClient, tenant: TenantRead) -> None:
    campaign = uuid.uuid4()
    ids = [_request(tenant, campaign_id=str(campaign)) for _ in range(5)]
    _request(tenant)
    headers = auth(tenant, Role.AUDITOR)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2, "campaign_id": str(campaign)}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/approvals", params=params, headers=headers).json()
        seen += [item["id"] for item in page["items"]]
        assert all("evidence" not in item for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(str(i) for i in ids)
    pending = client.get("/v1/approvals", params={"status": "approved"}, headers=headers).json()
    assert pending["items"] == []
    assert (
        client.get("/v1/approvals", params={"status": "nope"}, headers=headers).status_code == 422
    )


def test_other_tenants_approvals_are_not_found(client: TestClient, tenant: TenantRead) -> None:
    theirs = _request(new_tenant("appr-other"))
    mine = auth(tenant, Role.OWNER)
    assert client.get(f"/v1/approvals/{theirs}", headers=mine).status_code == 404
    assert client.post(f"/v1/approvals/{theirs}/approve", json={}, headers=mine).status_code == 404

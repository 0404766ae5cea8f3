"""The policy engine against PostgreSQL and through the API: versions, activation, audited
decisions with recorded inputs, dry runs, backtests and the kill switch (including the race
with concurrent decisions)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from http_api.app import create_app
from shared.audit.orm import AuditEvent
from shared.audit.schemas import Actor, ActorType
from shared.campaigns.orm import Campaign
from shared.db.server import DatabaseUrls
from shared.db.unit_of_work import tenant_unit_of_work
from shared.identity import dev_issuer
from shared.identity.model import Role
from shared.identity.schemas import TenantCreate
from shared.identity.service import provision_tenant
from shared.policy.kill_switch import InMemoryOrchestrationSignal, kill_switch_state
from shared.policy.model import input_hash
from shared.policy.orm import PolicyDecisionRecord
from shared.policy.service import decide
from tests.integration.identity.conftest import bearer
from tests.unit.policy.inputs import CLEAN_SEND, policy_input

SYSTEM = Actor(type=ActorType.SYSTEM, id="test-gate")

STRICT_PACK = """\
id: strict
description: No sends to acme.com at all.
rules:
  - id: block-acme
    when: action.type == 'send' && recipient.domain == 'acme.com'
    effect: deny
    reason: Acme asked us to stop.
  - id: kill
    when: tenant.kill_switch_active || campaign.kill_switch_active
    effect: deny
    reason: Kill switch.
"""


@pytest.fixture(scope="module")
def signal() -> InMemoryOrchestrationSignal:
    return InMemoryOrchestrationSignal()


@pytest.fixture(scope="module")
def app(database: DatabaseUrls, signal: InMemoryOrchestrationSignal) -> FastAPI:
    application = create_app()
    application.state.orchestration_signal = signal
    return application


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def slug(database: DatabaseUrls) -> str:
    value = f"policy-{uuid.uuid4().hex[:8]}"
    provision_tenant(TenantCreate(slug=value, name="Policy tenant"))
    return value


def tenant_id(slug: str) -> uuid.UUID:
    return dev_issuer_tenant(slug)


def dev_issuer_tenant(slug: str) -> uuid.UUID:
    from shared.identity.service import find_tenant_id

    found = find_tenant_id(slug)
    assert found is not None
    return found


def headers(slug: str, role: Role = Role.OWNER) -> dict[str, str]:
    return bearer(dev_issuer.dev_token(slug, role))


def events(tenant: uuid.UUID, event_type: str) -> list[AuditEvent]:
    with tenant_unit_of_work(tenant) as uow:
        return list(
            uow.session.scalars(
                select(AuditEvent)
                .where(AuditEvent.tenant_id == tenant, AuditEvent.event_type == event_type)
                .order_by(AuditEvent.seq)
            )
        )


def test_save_list_activate_and_the_default_until_then(client: TestClient, slug: str) -> None:
    listed = client.get("/v1/policies", headers=headers(slug)).json()
    assert listed["active"]["source"] == "builtin"
    assert listed["active"]["pack_id"] == "asep-default"
    assert listed["versions"] == []

    created = client.post(
        "/v1/policies",
        content=STRICT_PACK,
        headers={**headers(slug), "Content-Type": "application/yaml"},
    )
    assert created.status_code == 201, created.text
    version = created.json()
    assert (version["pack_id"], version["version"], version["active"]) == ("strict", 1, False)

    detail = client.get(f"/v1/policies/{version['id']}", headers=headers(slug)).json()
    assert detail["text"] == STRICT_PACK
    assert [rule["id"] for rule in detail["rules"]] == ["block-acme", "kill"]

    activated = client.post(f"/v1/policies/{version['id']}/activate", headers=headers(slug))
    assert activated.status_code == 200, activated.text
    listed = client.get("/v1/policies", headers=headers(slug)).json()
    assert listed["active"]["id"] == version["id"]

    as_json = client.post(
        "/v1/policies",
        json={
            "id": "strict",
            "rules": [{"id": "r", "when": "true", "effect": "deny", "reason": "x"}],
        },
        headers=headers(slug),
    )
    assert as_json.status_code == 201
    assert as_json.json()["version"] == 2

    tenant = tenant_id(slug)
    assert [e.event_json["version"] for e in events(tenant, "POLICY_CREATED")] == [1, 2]
    assert len(events(tenant, "POLICY_PUBLISHED")) == 1


def test_an_invalid_pack_is_422_naming_the_rule_and_the_active_pack_stays(
    client: TestClient, slug: str
) -> None:
    good = client.post("/v1/policies", content=STRICT_PACK, headers=headers(slug)).json()
    client.post(f"/v1/policies/{good['id']}/activate", headers=headers(slug))
    broken = STRICT_PACK.replace("recipient.domain == 'acme.com'", "recipient.domian ==")
    response = client.post("/v1/policies", content=broken, headers=headers(slug))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "invalid_policy_pack"
    (error,) = body["errors"]
    assert error["rule_id"] == "block-acme"
    assert error["line"] == 1
    assert error["column"] is not None
    unknown_field = STRICT_PACK.replace("recipient.domain", "recipient.domian")
    (error,) = client.post("/v1/policies", content=unknown_field, headers=headers(slug)).json()[
        "errors"
    ]
    assert (error["rule_id"], error["field"]) == ("block-acme", "recipient.domian")
    unknown_effect = STRICT_PACK.replace(
        "effect: deny\n    reason: Kill", "effect: halt\n    reason: Kill"
    )
    (error,) = client.post("/v1/policies", content=unknown_effect, headers=headers(slug)).json()[
        "errors"
    ]
    assert (error["rule_id"], error["field"]) == ("kill", "effect")

    listed = client.get("/v1/policies", headers=headers(slug)).json()
    assert listed["active"]["id"] == good["id"]
    assert len(listed["versions"]) == 1


def test_permissions_follow_the_matrix(client: TestClient, slug: str) -> None:
    assert (
        client.post(
            "/v1/policies", content=STRICT_PACK, headers=headers(slug, Role.MANAGER)
        ).status_code
        == 403
    )
    saved = client.post("/v1/policies", content=STRICT_PACK, headers=headers(slug, Role.REVOPS))
    assert saved.status_code == 201
    activate = f"/v1/policies/{saved.json()['id']}/activate"
    assert client.post(activate, headers=headers(slug, Role.REVOPS)).status_code == 403
    assert client.post(activate, headers=headers(slug, Role.ADMIN)).status_code == 200
    assert (
        client.post("/v1/kill-switch", json={}, headers=headers(slug, Role.REVOPS)).status_code
        == 403
    )
    assert client.get("/v1/kill-switch", headers=headers(slug, Role.AUDITOR)).status_code == 200


def test_decide_records_the_input_and_audits_the_decision(slug: str) -> None:
    tenant = tenant_id(slug)
    first_touch = policy_input(action={"is_first_touch": True, "stage": "draft"})
    with tenant_unit_of_work(tenant) as uow:
        decision = decide(uow, first_touch, SYSTEM)
    assert decision.allowed
    assert decision.approval_required
    assert decision.pack_id == "asep-default"
    (event,) = events(tenant, "POLICY_EVALUATED")
    payload = event.event_json
    assert payload["decision_id"] == decision.decision_id
    assert payload["input_hash"] == decision.input_hash
    assert payload["pack"] == {
        "id": "asep-default",
        "version": 1,
        "version_id": None,
        "source": "builtin",
    }
    assert "first-touch-approval" in payload["matched_rules"]
    assert payload["decision"]["approval_required"] is True
    assert "input" not in payload, "personal data stays out of the immutable chain"
    with tenant_unit_of_work(tenant) as uow:
        record = uow.get(PolicyDecisionRecord, uuid.UUID(decision.decision_id))
        assert record is not None
        assert record.input == first_touch.activation()
        assert input_hash(record.input) == payload["input_hash"]
        assert record.audit_seq == event.seq


def test_dry_run_shows_the_trace_and_is_not_audited(client: TestClient, slug: str) -> None:
    body = {"input": policy_input(recipient={"domain": "army.mil"}).model_dump(mode="json")}
    response = client.post("/v1/policies/test", json=body, headers=headers(slug))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["decision"]["allowed"] is False
    assert result["pack"]["source"] == "builtin"
    denied_by = [r["rule_id"] for r in result["decision"]["reasons"] if r["effect"] == "deny"]
    assert denied_by == ["no-government-recipients"]
    assert len(result["decision"]["trace"]) >= 25
    unsaved = client.post(
        "/v1/policies/test", json={**body, "text": STRICT_PACK}, headers=headers(slug)
    ).json()
    assert unsaved["pack"] is None
    assert [t["rule_id"] for t in unsaved["decision"]["trace"]] == ["block-acme", "kill"]
    assert events(tenant_id(slug), "POLICY_EVALUATED") == []


def test_backtest_reports_what_a_proposed_pack_would_change(client: TestClient, slug: str) -> None:
    tenant = tenant_id(slug)
    with tenant_unit_of_work(tenant) as uow:
        for domain in ("acme.com", "acme.com", "initech.com"):
            decide(uow, policy_input(recipient={"domain": domain, "email": f"a@{domain}"}), SYSTEM)
        decide(uow, policy_input(action={"is_first_touch": True}), SYSTEM)
    response = client.post(
        "/v1/policies/backtest", json={"text": STRICT_PACK, "limit": 10}, headers=headers(slug)
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["replayed"] == 4
    # The acme sends (one was a first touch needing approval) become denials; initech's
    # plain send stays allowed; every deal-never-from-sending match disappears.
    assert report["newly_denied"] == 3
    assert report["transitions"] == {"allow -> deny": 2, "approval -> deny": 1}
    assert report["rule_hits"] == {"block-acme": 3}
    denied = [d for d in report["diffs"] if d["outcome_after"] == "deny"]
    assert {d["recipient_domain"] for d in denied} == {"acme.com"}
    assert all(d["changes"]["allowed"] == {"before": True, "after": False} for d in denied)
    assert all("block-acme" in d["rules_added"] for d in denied)
    assert events(tenant, "POLICY_EVALUATED")[-1].event_json["decision_id"]  # only decide audits

    limited = client.post(
        "/v1/policies/backtest",
        json={"text": STRICT_PACK, "limit": 1, "max_diffs": 0},
        headers=headers(slug),
    ).json()
    assert limited["replayed"] == 1
    assert limited["diffs"] == []
    assert limited["diffs_truncated"] is (limited["changed"] > 0)
    assert client.post("/v1/policies/backtest", json={}, headers=headers(slug)).status_code == 422


def test_kill_switch_activates_signals_and_denies_then_releases(
    client: TestClient, slug: str, signal: InMemoryOrchestrationSignal
) -> None:
    tenant = tenant_id(slug)
    activated = client.post(
        "/v1/kill-switch", json={"reason": "incident 42"}, headers=headers(slug, Role.MANAGER)
    )
    assert activated.status_code == 200, activated.text
    assert activated.json()["tenant"]["active"] is True
    assert (tenant, None) in signal.signals
    with tenant_unit_of_work(tenant) as uow:
        assert kill_switch_state(uow, None) == (True, False)
        decision = decide(uow, policy_input(), SYSTEM)
    assert decision.allowed is False
    assert "kill-switch-tenant" in [r.rule_id for r in decision.reasons]
    released = client.delete("/v1/kill-switch", headers=headers(slug, Role.MANAGER))
    assert released.json()["tenant"]["active"] is False
    with tenant_unit_of_work(tenant) as uow:
        assert decide(uow, policy_input(), SYSTEM).allowed is True
    assert [e.event_json["reason"] for e in events(tenant, "KILL_SWITCH_ACTIVATED")] == [
        "incident 42"
    ]
    assert len(events(tenant, "KILL_SWITCH_RELEASED")) == 1


def test_campaign_kill_switch_stops_only_that_campaign(client: TestClient, slug: str) -> None:
    tenant = tenant_id(slug)
    with tenant_unit_of_work(tenant) as uow:
        campaign = uow.add(Campaign(id=uuid.uuid4(), name="Q4"))
        other = uow.add(Campaign(id=uuid.uuid4(), name="Q1"))
        uow.flush()
        campaign_id, other_id = campaign.id, other.id
    response = client.post(
        "/v1/kill-switch", json={"campaign_id": str(campaign_id)}, headers=headers(slug)
    )
    assert response.status_code == 200
    assert [c["campaign_id"] for c in response.json()["campaigns"]] == [str(campaign_id)]
    missing = client.post(
        "/v1/kill-switch", json={"campaign_id": str(uuid.uuid4())}, headers=headers(slug)
    )
    assert missing.status_code == 404
    with tenant_unit_of_work(tenant) as uow:
        stopped = decide(uow, policy_input(campaign={"id": str(campaign_id)}), SYSTEM)
        running = decide(uow, policy_input(campaign={"id": str(other_id)}), SYSTEM)
    assert stopped.allowed is False
    assert running.allowed is True
    assert "kill-switch-campaign" in [r.rule_id for r in stopped.reasons]
    client.delete(f"/v1/kill-switch?campaign_id={campaign_id}", headers=headers(slug))
    with tenant_unit_of_work(tenant) as uow:
        assert decide(uow, policy_input(campaign={"id": str(campaign_id)}), SYSTEM).allowed


def test_no_allow_after_the_activation_commits(slug: str) -> None:
    """Activate during 50 concurrent send decisions: in the audit chain's order (appends are
    serialized), every decision after KILL_SWITCH_ACTIVATED denies."""
    from shared.policy.kill_switch import activate_kill_switch
    from shared.policy.schemas import KillSwitchChange

    tenant = tenant_id(slug)
    with tenant_unit_of_work(tenant) as uow:  # the switch row exists before the race
        kill_switch_state(uow, None)
    started = threading.Barrier(51)
    some_done = threading.Event()
    done_count = [0]
    lock = threading.Lock()
    failures: list[BaseException] = []

    def send_decision() -> None:
        try:
            started.wait()
            with tenant_unit_of_work(tenant) as uow:
                decide(uow, policy_input(CLEAN_SEND), SYSTEM)
            with lock:
                done_count[0] += 1
                if done_count[0] >= 10:
                    some_done.set()
        except BaseException as exc:  # reported below
            failures.append(exc)

    def activate() -> None:
        started.wait()
        some_done.wait(timeout=30)
        with tenant_unit_of_work(tenant) as uow:
            activate_kill_switch(uow, KillSwitchChange(reason="race"), SYSTEM)

    threads = [threading.Thread(target=send_decision) for _ in range(50)]
    threads.append(threading.Thread(target=activate))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    with tenant_unit_of_work(tenant) as uow:
        chain: list[Any] = list(
            uow.session.scalars(
                select(AuditEvent)
                .where(
                    AuditEvent.tenant_id == tenant,
                    AuditEvent.event_type.in_(["POLICY_EVALUATED", "KILL_SWITCH_ACTIVATED"]),
                )
                .order_by(AuditEvent.seq)
            )
        )
    kinds = [event.event_type for event in chain]
    assert kinds.count("POLICY_EVALUATED") == 50
    activation = kinds.index("KILL_SWITCH_ACTIVATED")
    before, after = chain[:activation], chain[activation + 1 :]
    assert len(before) >= 10
    assert all(e.event_json["decision"]["allowed"] for e in before)
    assert [e for e in after if e.event_json["decision"]["allowed"]] == []

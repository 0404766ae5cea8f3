"""Suppression API: add, list with cursors, import with a per-row report, delete; and the
check the send gate uses sees every change as soon as it commits."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient

from shared.audit.schemas import Actor, ActorType
from shared.db.unit_of_work import tenant_unit_of_work
from shared.deliverability import suppression
from shared.deliverability.schemas import SuppressionStatus
from shared.identity.model import Role
from shared.identity.schemas import TenantRead
from tests.integration.deliverability.conftest import audit_events, auth, new_tenant

TEST_ACTOR = Actor(type=ActorType.SYSTEM, id="test")


@pytest.fixture
def tenant(client: TestClient) -> TenantRead:
    return new_tenant("supp")


def _check(tenant: TenantRead, address: str) -> SuppressionStatus:
    with tenant_unit_of_work(tenant.id) as uow:
        return suppression.check(uow, address)


def test_address_and_domain_entries_take_effect_at_once(
    client: TestClient, tenant: TenantRead
) -> None:
    assert not _check(tenant, "jane@example.com").suppressed
    added = client.post(
        "/v1/suppressions", json={"value": " Jane@Example.com "}, headers=auth(tenant)
    )
    assert added.status_code == 201, added.text
    assert added.json()["kind"] == "address"
    assert added.json()["value"] == "jane@example.com"
    status = _check(tenant, "jane@example.com")
    assert (status.suppressed, status.scope, status.reason) == (True, "address", "manual")
    assert not _check(tenant, "john@example.com").suppressed

    domain = client.post("/v1/suppressions", json={"value": "@Acme.example"}, headers=auth(tenant))
    assert domain.status_code == 201, domain.text
    assert domain.json()["kind"] == "domain"
    assert _check(tenant, "anyone@acme.example").scope == "domain"
    assert _check(tenant, "someone@eu.sales.acme.example").suppressed
    assert not _check(tenant, "x@notacme.example").suppressed

    again = client.post(
        "/v1/suppressions", json={"value": "jane@example.com"}, headers=auth(tenant)
    )
    assert again.status_code == 409
    assert again.json()["code"] == "already_suppressed"
    (event,) = audit_events(tenant.id, "SUPPRESSION_ADDED")[:1]
    assert event["address_sha256"] == hashlib.sha256(b"jane@example.com").hexdigest()
    assert "jane@example.com" not in str(event)


def test_invalid_values_are_refused(client: TestClient, tenant: TenantRead) -> None:
    for body in (
        {"value": "not an address@"},
        {"value": "localhost"},
        {"value": "a@b.example", "kind": "domain"},
        {"value": "x@y.example", "reason": "unsubscribe"},
    ):
        response = client.post("/v1/suppressions", json=body, headers=auth(tenant))
        assert response.status_code == 422, (body, response.text)


def test_a_tenant_sees_and_deletes_only_its_own(client: TestClient, tenant: TenantRead) -> None:
    other = new_tenant("supp-other")
    theirs = client.post("/v1/suppressions", json={"value": "t@their.example"}, headers=auth(other))
    assert theirs.status_code == 201
    assert not _check(tenant, "t@their.example").suppressed
    listed = client.get("/v1/suppressions", headers=auth(tenant)).json()
    assert listed["items"] == []
    gone = client.delete(f"/v1/suppressions/{theirs.json()['id']}", headers=auth(tenant))
    assert gone.status_code == 404
    assert _check(other, "t@their.example").suppressed


def test_cursor_pages_cover_every_entry_once(client: TestClient, tenant: TenantRead) -> None:
    values = [f"p{i}@page.example" for i in range(7)]
    for value in values:
        assert (
            client.post("/v1/suppressions", json={"value": value}, headers=auth(tenant)).status_code
            == 201
        )
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/suppressions", params=params, headers=auth(tenant)).json()
        seen += [item["value"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(values)
    assert pages == 3
    bad = client.get("/v1/suppressions", params={"cursor": "nope"}, headers=auth(tenant))
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_cursor"
    domains = client.get("/v1/suppressions", params={"kind": "domain"}, headers=auth(tenant))
    assert domains.json()["items"] == []


def test_import_keeps_good_rows_and_reports_every_bad_one(
    client: TestClient, tenant: TenantRead
) -> None:
    client.post("/v1/suppressions", json={"value": "dup@imp.example"}, headers=auth(tenant))
    csv_text = (
        "Email,kind,note\n"
        "a@imp.example,,\n"
        "not-an-address,,\n"
        "imp2.example,domain,competitor\n"
        ",,\n"
        "dup@imp.example,,\n"
        "b@imp.example,weird,\n"
        "c@imp.example,address,vip,extra\n"
        "A@IMP.example,,\n"
    )
    response = client.post(
        "/v1/suppressions/import",
        content=csv_text.encode(),
        headers={**auth(tenant), "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["rows"] == 8
    assert report["added"] == 2
    assert report["already_suppressed"] == 2
    assert [(e["row"], e["value"]) for e in report["errors"]] == [
        (3, "not-an-address"),
        (5, ""),
        (7, "b@imp.example"),
        (8, "c@imp.example"),
    ]
    assert _check(tenant, "a@imp.example").reason == "import"
    assert _check(tenant, "x@imp2.example").scope == "domain"
    (event,) = audit_events(tenant.id, "SUPPRESSIONS_IMPORTED")
    assert event == {"rows": 8, "added": 2, "already_suppressed": 2, "errors": 4}

    no_header = client.post(
        "/v1/suppressions/import",
        content=b"foo,bar\n1,2\n",
        headers={**auth(tenant), "Content-Type": "text/csv"},
    )
    assert no_header.status_code == 422
    assert no_header.json()["code"] == "invalid_suppression_import"

    oversized_field = client.post(
        "/v1/suppressions/import",
        content=b"value\n" + b"a" * 200_000 + b"\n",
        headers={**auth(tenant), "Content-Type": "text/csv"},
    )
    assert oversized_field.status_code == 422, oversized_field.text
    assert oversized_field.json()["code"] == "invalid_suppression_import"


def test_delete_lifts_a_manual_entry_but_never_a_recipients_opt_out(
    client: TestClient, tenant: TenantRead
) -> None:
    added = client.post("/v1/suppressions", json={"value": "m@del.example"}, headers=auth(tenant))
    deleted = client.delete(f"/v1/suppressions/{added.json()['id']}", headers=auth(tenant))
    assert deleted.status_code == 204
    assert not _check(tenant, "m@del.example").suppressed
    assert len(audit_events(tenant.id, "SUPPRESSION_REMOVED")) == 1
    with tenant_unit_of_work(tenant.id) as uow:
        assert suppression.unsubscribe(uow, "o@del.example", TEST_ACTOR)
    status = _check(tenant, "o@del.example")
    refused = client.delete(f"/v1/suppressions/{status.suppression_id}", headers=auth(tenant))
    assert refused.status_code == 409
    assert refused.json()["code"] == "recipient_opt_out"
    assert _check(tenant, "o@del.example").suppressed


def test_operators_read_but_cannot_write(client: TestClient, tenant: TenantRead) -> None:
    operator = auth(tenant, Role.OPERATOR)
    assert client.get("/v1/suppressions", headers=operator).status_code == 200
    assert (
        client.post("/v1/suppressions", json={"value": "x@y.example"}, headers=operator).status_code
        == 403
    )

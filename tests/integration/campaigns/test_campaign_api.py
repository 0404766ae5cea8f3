"""Campaigns and sequences over HTTP: versions, 422 with located problems, tenant scoping."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from http_api.app import create_app
from shared.db.server import DatabaseUrls
from shared.identity import dev_issuer
from shared.identity.model import Role
from shared.identity.schemas import TenantCreate
from shared.identity.service import provision_tenant


@pytest.fixture(scope="module")
def client(database: DatabaseUrls) -> Iterator[TestClient]:
    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def headers(role: Role = Role.REVOPS, slug: str | None = None) -> dict[str, str]:
    slug = slug or _tenant()
    return {"Authorization": f"Bearer {dev_issuer.dev_token(slug, role)}"}


_SLUGS: dict[str, str] = {}


def _tenant(label: str = "camp") -> str:
    if label not in _SLUGS:
        _SLUGS[label] = f"{label}-{uuid.uuid4().hex[:8]}"
        provision_tenant(TenantCreate(slug=_SLUGS[label], name=label))
    return _SLUGS[label]


SEQUENCE = {
    "name": "Three touches",
    "steps": [
        {
            "id": "t1",
            "type": "email",
            "subject": "Idea for {{company_name}}",
            "body": "Hi {{first_name}}",
            "approval": "every_time",
            "next": "d1",
        },
        {"id": "d1", "type": "delay", "seconds": 5, "next": "b1"},
        {"id": "b1", "type": "branch", "condition": "replied", "then": None, "otherwise": "t2"},
        {
            "id": "t2",
            "type": "email",
            "subject": "Re: idea",
            "body": "Bumping this",
            "approval": "once",
        },
    ],
}


def test_campaign_and_sequence_versions(client: TestClient) -> None:
    created = client.post(
        "/v1/campaigns",
        json={
            "name": "Q1 outbound",
            "offer": "Pilot",
            "settings": {
                "mode": "pilot",
                "constraints": {"allowed_domains": ["acme.com"]},
                "send_window": {"time_zone": "Europe/Berlin"},
            },
        },
        headers=headers(),
    )
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    assert created.json()["status"] == "draft"
    first = client.post(f"/v1/campaigns/{campaign_id}/sequences", json=SEQUENCE, headers=headers())
    second = client.post(f"/v1/campaigns/{campaign_id}/sequences", json=SEQUENCE, headers=headers())
    assert (first.status_code, second.status_code) == (201, 201)
    assert (first.json()["version"], second.json()["version"]) == (1, 2)
    listed = client.get(f"/v1/campaigns/{campaign_id}/sequences", headers=headers(Role.AUDITOR))
    assert [s["version"] for s in listed.json()] == [1, 2]
    page = client.get("/v1/campaigns?limit=1", headers=headers(Role.OPERATOR)).json()
    assert len(page["items"]) == 1


def test_an_unsound_sequence_is_a_422_listing_each_problem(client: TestClient) -> None:
    campaign_id = client.post("/v1/campaigns", json={"name": "x"}, headers=headers()).json()["id"]
    broken = {
        "name": "broken",
        "steps": [
            {"id": "t1", "type": "email", "subject": "s", "body": "Hi {{nickname}}", "next": "t9"},
            {"id": "t2", "type": "email", "subject": "s", "body": "orphan"},
        ],
    }
    response = client.post(f"/v1/campaigns/{campaign_id}/sequences", json=broken, headers=headers())
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "sequence_invalid"
    assert {e["location"] for e in body["errors"]} >= {"steps[0]"}
    unknown_zone = client.post(
        "/v1/campaigns",
        json={"name": "x", "settings": {"send_window": {"time_zone": "Mars/Base"}}},
        headers=headers(),
    )
    assert unknown_zone.status_code == 422


def test_other_tenants_campaigns_are_not_found(client: TestClient) -> None:
    theirs = client.post(
        "/v1/campaigns", json={"name": "theirs"}, headers=headers(slug=_tenant("rival"))
    ).json()["id"]
    assert client.get(f"/v1/campaigns/{theirs}", headers=headers()).status_code == 404
    assert (
        client.post(
            f"/v1/campaigns/{theirs}/sequences", json=SEQUENCE, headers=headers()
        ).status_code
        == 404
    )

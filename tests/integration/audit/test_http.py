"""GET /v1/audit/events, GET /v1/audit/verify and POST /v1/audit/exports through the app."""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from http_api.app import create_app
from shared.audit.checkpoints import checkpoint_chain, tenant_chain
from shared.audit.signing import LocalKeySigner
from shared.audit.verify import verify_bundle_path
from shared.db.server import DatabaseUrls
from shared.identity import dev_issuer
from shared.identity.model import Role
from shared.identity.permissions import Permission, role_has
from shared.identity.schemas import TenantCreate
from shared.identity.service import find_tenant_id, provision_tenant
from tests.integration.audit.conftest import append_events


@pytest.fixture(scope="module")
def client(database: DatabaseUrls) -> Iterator[TestClient]:
    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def _auth(slug: str, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {dev_issuer.dev_token(slug, role)}"}


@pytest.fixture
def slug(database: DatabaseUrls) -> str:
    slug = f"audit-http-{uuid.uuid4().hex[:8]}"
    tenant = provision_tenant(TenantCreate(slug=slug, name="Audit HTTP"))
    append_events(tenant, 45)
    return slug


def test_events_are_filtered_and_paged_by_seq(client: TestClient, slug: str) -> None:
    auditor = _auth(slug, Role.AUDITOR)
    seen: list[int] = []
    cursor = 0
    while True:
        page = client.get(f"/v1/audit/events?limit=20&after_seq={cursor}", headers=auditor)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [item["seq"] for item in body["items"]]
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
    assert seen == list(range(1, len(seen) + 1))
    assert len(seen) >= 46
    filtered = client.get(
        "/v1/audit/events?event_type=DRAFT_CREATED&correlation_id=corr-0", headers=auditor
    ).json()["items"]
    assert [(i["event_type"], i["correlation_id"]) for i in filtered] == [
        ("DRAFT_CREATED", "corr-0")
    ]
    by_actor = client.get("/v1/audit/events?actor_id=key-robot&limit=1000", headers=auditor).json()
    assert by_actor["items"]
    assert {i["actor"]["id"] for i in by_actor["items"]} == {"key-robot"}
    later = client.get("/v1/audit/events?since=2999-01-01T00:00:00Z", headers=auditor).json()
    assert later["items"] == []


def test_roles_without_audit_read_are_refused(client: TestClient, slug: str) -> None:
    for role in Role:
        response = client.get("/v1/audit/events", headers=_auth(slug, role))
        assert response.status_code == (200 if role_has(role, Permission.AUDIT_READ) else 403)
    assert client.get("/v1/audit/events").status_code == 401


def test_verify_and_export_round_trip(
    client: TestClient,
    slug: str,
    signer: LocalKeySigner,
    keys: dict[str, ec.EllipticCurvePublicKey],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import http_api.audit as audit_routes

    monkeypatch.setattr(audit_routes, "trusted_keys", lambda: keys)
    auditor = _auth(slug, Role.AUDITOR)
    tenant_id = find_tenant_id(slug)
    assert tenant_id is not None
    assert checkpoint_chain(tenant_chain(tenant_id), signer).status == "created"
    report = client.get("/v1/audit/verify", headers=auditor).json()
    assert report["ok"], report
    assert report["checkpoints_checked"] == 1

    response = client.post("/v1/audit/exports", json={}, headers=auditor)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert int(response.headers["x-audit-signed-through-seq"]) == report["events_checked"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        archive.extractall(tmp_path)
    bundles = verify_bundle_path(tmp_path, keys)
    assert bundles.ok, bundles.problems
    exported = client.get("/v1/audit/events?event_type=AUDIT_EXPORTED", headers=auditor).json()
    last = exported["items"][-1]
    assert last["event_json"] == {
        "from_checkpoint": 1,
        "checkpoints": 1,
        "signed_through_seq": report["events_checked"],
    }
    assert last["actor"]["type"] == "user"
    assert last["seq"] == report["events_checked"] + 1

"""Every route and every role gets the matrix's answer; other tenants' objects are 404.

Tokens come from the dev issuer (each tenant its own issuer), which goes through the same
validation path as Entra and Okta tokens.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from http_api.app import create_app
from http_api.auth import api_routes, route_permissions
from shared.db.server import DatabaseUrls, libpq_dsn
from shared.identity import dev_issuer
from shared.identity.model import Role
from shared.identity.permissions import PLATFORM_OPERATOR, PUBLIC, Permission, role_has
from shared.identity.schemas import TenantCreate
from shared.identity.service import provision_tenant
from tests.integration.identity.conftest import bearer


@pytest.fixture(scope="module")
def app(database: DatabaseUrls) -> FastAPI:
    return create_app()


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Any:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _new_tenant(label: str) -> str:
    slug = f"{label}-{uuid.uuid4().hex[:8]}"
    provision_tenant(TenantCreate(slug=slug, name=label))
    return slug


@pytest.fixture(scope="module")
def tenant_slug(database: DatabaseUrls) -> str:
    return _new_tenant("matrix")


@pytest.fixture(scope="module")
def other_slug(database: DatabaseUrls) -> str:
    return _new_tenant("other")


def token(slug: str, role: Role) -> dict[str, str]:
    return bearer(dev_issuer.dev_token(slug, role))


def _routes(app: FastAPI) -> list[tuple[str, str, str]]:
    found = []
    for entry in api_routes(app):
        (permission,) = route_permissions(entry.route)
        for method in sorted(entry.methods - {"HEAD"}):
            found.append((method, entry.path, permission))
    return found


def _concrete(path: str) -> str:
    # Any id will do: a permitted caller gets 404 (or 422), a forbidden one 403 first.
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


def test_every_route_and_role_gets_the_matrix_answer(
    app: FastAPI, client: TestClient, tenant_slug: str
) -> None:
    mismatches = []
    checked = 0
    for method, path, permission in _routes(app):
        if permission == PUBLIC:
            continue
        for role in Role:
            response = client.request(
                method, _concrete(path), headers=token(tenant_slug, role), json={}
            )
            allowed = permission != PLATFORM_OPERATOR and role_has(role, Permission(permission))
            refused = response.status_code == 403
            if allowed == refused or response.status_code in (401, 500):
                mismatches.append(f"{method} {path} as {role}: {response.status_code}")
            checked += 1
    assert checked >= 60
    assert mismatches == []


def test_platform_operator_provisions_tenants_and_nobody_else_does(
    client: TestClient, tenant_slug: str
) -> None:
    slug = f"acme-{uuid.uuid4().hex[:8]}"
    body = {
        "tenant": {"slug": slug, "name": "Acme"},
        "sso": {
            "provider": "entra",
            "entra_tenant_id": str(uuid.uuid4()),
            "audiences": ["api://asep"],
        },
        "owner": {"issuer": "placeholder", "subject": "oid-1", "role": "owner"},
    }
    assert (
        client.post("/v1/tenants", json=body, headers=token(tenant_slug, Role.OWNER)).status_code
        == 403
    )
    platform = bearer(dev_issuer.platform_token())
    rejected = client.post("/v1/tenants", json=body, headers=platform)
    assert rejected.status_code == 422, "the owner's issuer must be the tenant's SSO issuer"
    entra_tid = body["sso"]["entra_tenant_id"]  # type: ignore[index]
    body["owner"]["issuer"] = f"https://login.microsoftonline.com/{entra_tid}/v2.0"  # type: ignore[index]
    created = client.post("/v1/tenants", json=body, headers=platform)
    assert created.status_code == 201, created.text
    assert created.json()["slug"] == slug
    again = client.post("/v1/tenants", json=body, headers=platform)
    assert again.status_code == 409


def test_other_tenants_objects_are_not_found_never_forbidden(
    client: TestClient, tenant_slug: str, other_slug: str
) -> None:
    mine = token(tenant_slug, Role.OWNER)
    theirs = token(other_slug, Role.OWNER)
    their_users = client.get("/v1/users", headers=theirs).json()
    their_key = client.post(
        "/v1/api-keys", json={"name": "ci", "scopes": ["prospects:read"]}, headers=theirs
    ).json()
    for user in their_users:
        response = client.patch(
            f"/v1/users/{user['id']}/role", json={"role": "auditor"}, headers=mine
        )
        assert response.status_code == 404
        assert user["subject"] not in response.text
    assert client.delete(f"/v1/api-keys/{their_key['id']}", headers=mine).status_code == 404
    listed = client.get("/v1/users", headers=mine).json()
    assert {u["id"] for u in listed}.isdisjoint({u["id"] for u in their_users})


def test_users_roles_and_the_owner_rules(client: TestClient, tenant_slug: str) -> None:
    owner, admin = token(tenant_slug, Role.OWNER), token(tenant_slug, Role.ADMIN)
    issuer = dev_issuer.issuer_for(tenant_slug)
    new_user = {"issuer": issuer, "subject": f"s-{uuid.uuid4().hex[:8]}", "role": "operator"}
    created = client.post("/v1/users", json=new_user, headers=admin)
    assert created.status_code == 201, created.text
    assert client.post("/v1/users", json=new_user, headers=admin).status_code == 409
    foreign = {**new_user, "issuer": "https://not-our-idp.example", "subject": "x"}
    assert client.post("/v1/users", json=foreign, headers=admin).status_code == 422
    user_id = created.json()["id"]
    promote = client.patch(f"/v1/users/{user_id}/role", json={"role": "owner"}, headers=admin)
    assert promote.status_code == 403
    promoted = client.patch(f"/v1/users/{user_id}/role", json={"role": "owner"}, headers=owner)
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "owner"


def test_the_last_owner_cannot_be_demoted(client: TestClient) -> None:
    slug = _new_tenant("solo")
    owner = token(slug, Role.OWNER)
    users = client.get("/v1/users", headers=owner).json()
    (me,) = [u for u in users if u["role"] == "owner"]
    response = client.patch(f"/v1/users/{me['id']}/role", json={"role": "admin"}, headers=owner)
    assert response.status_code == 409
    assert response.json()["code"] == "last_owner"


def test_api_keys_are_scoped_shown_once_and_revocable(
    app: FastAPI, client: TestClient, tenant_slug: str
) -> None:
    admin = token(tenant_slug, Role.ADMIN)
    created = client.post(
        "/v1/api-keys",
        json={"name": "importer", "scopes": ["prospects:read", "users:read"]},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    assert secret.startswith("asep_")
    listed = client.get("/v1/api-keys", headers=admin)
    assert secret not in listed.text
    assert created.json()["prefix"] in listed.text

    key = bearer(secret)
    assert client.get("/v1/users", headers=key).status_code == 200
    assert client.get("/v1/tenants/me", headers=key).status_code == 403
    assert (
        client.post(
            "/v1/api-keys", json={"name": "x", "scopes": ["users:read"]}, headers=key
        ).status_code
        == 403
    )

    assert client.delete(f"/v1/api-keys/{created.json()['id']}", headers=admin).status_code == 200
    # A fresh instance (as after the cache window) refuses it at once.
    with TestClient(create_app(), raise_server_exceptions=False) as fresh:
        assert fresh.get("/v1/users", headers=key).status_code == 401
    # A warm instance refuses it once its cache entry ages out (≤ 30 s, bound under 60 s).
    app.state.authenticator.api_keys.forget()
    assert client.get("/v1/users", headers=key).status_code == 401


def test_api_key_scopes_are_bounded_by_the_creator(client: TestClient, tenant_slug: str) -> None:
    revops = token(tenant_slug, Role.REVOPS)
    beyond = client.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["users:write"]}, headers=revops
    )
    assert beyond.status_code == 403
    unknown = client.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["rocket:launch"]}, headers=revops
    )
    assert unknown.status_code == 422
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    expired = client.post(
        "/v1/api-keys",
        json={"name": "x", "scopes": ["prospects:read"], "expires_at": past},
        headers=revops,
    )
    assert expired.status_code == 422


@pytest.mark.parametrize(
    "credential",
    ["asep_aaaaaaaaaaaaaaaa_" + "A" * 43, "asep_short", "asep_" + "x" * 60],
)
def test_unknown_or_malformed_api_keys_are_401(client: TestClient, credential: str) -> None:
    response = client.get("/v1/users", headers=bearer(credential))
    assert response.status_code == 401
    assert response.json()["detail"] == "Authentication failed."


def _audit_rows(database: DatabaseUrls, tenant_id: str | None, event_type: str) -> list[Any]:
    with psycopg.connect(libpq_dsn(database.admin or database.owner)) as conn:
        if tenant_id is None:
            return conn.execute(
                "SELECT event_json FROM platform_audit_events WHERE event_type = %s",
                (event_type,),
            ).fetchall()
        return conn.execute(
            "SELECT event_json FROM audit_events WHERE tenant_id = %s AND event_type = %s",
            (tenant_id, event_type),
        ).fetchall()


def test_admin_changes_and_refusals_are_audited(database: DatabaseUrls, client: TestClient) -> None:
    slug = _new_tenant("audited")
    admin = token(slug, Role.ADMIN)
    tenant_id = client.get("/v1/tenants/me", headers=admin).json()["id"]
    key = client.post("/v1/api-keys", json={"name": "k", "scopes": ["users:read"]}, headers=admin)
    client.delete(f"/v1/api-keys/{key.json()['id']}", headers=admin)
    assert _audit_rows(database, tenant_id, "TENANT_CREATED")
    assert _audit_rows(database, tenant_id, "USER_CREATED")
    assert _audit_rows(database, tenant_id, "API_KEY_CREATED")
    assert _audit_rows(database, tenant_id, "API_KEY_REVOKED")

    # A token naming this tenant's issuer but not valid → the tenant's chain.
    forged = dev_issuer.mint_token(dev_issuer.issuer_for(slug), "dev-admin", ttl_seconds=-600)
    assert client.get("/v1/users", headers=bearer(forged)).status_code == 401
    reasons = [row[0]["reason"] for row in _audit_rows(database, tenant_id, "AUTH_REFUSED")]
    assert "expired" in reasons
    # No tenant to blame → the platform chain.
    unknown_issuer = dev_issuer.mint_token(f"urn:nobody:{uuid.uuid4().hex}", "x")
    assert client.get("/v1/users", headers=bearer(unknown_issuer)).status_code == 401
    platform_reasons = [row[0]["reason"] for row in _audit_rows(database, None, "AUTH_REFUSED")]
    assert "issuer not onboarded" in platform_reasons
    for row in _audit_rows(database, tenant_id, "AUTH_REFUSED"):
        assert forged[:40] not in str(row[0])

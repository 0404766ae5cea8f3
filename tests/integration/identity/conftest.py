"""Two customers onboarded through SSO: one on an Entra-style IdP, one on an Okta-style IdP,
both served by real OIDC providers (oauth2-mock-server) on loopback."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from http_api.app import create_app
from shared.db.server import DatabaseUrls
from shared.identity.model import Role
from shared.identity.schemas import SsoConnectionCreate, TenantCreate, TenantRead, UserCreate
from shared.identity.service import provision_tenant
from shared.identity.tokens import Provider, entra_issuer
from tests.peers.oidc import OidcProvider, running_oidc_provider

API_AUDIENCE = "api://asep-tests"


@dataclass
class Customer:
    tenant: TenantRead
    idp: OidcProvider
    issuer: str
    provider: Provider
    entra_tenant_id: str | None
    owner_subject: str

    def claims(self, subject: str, **extra: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {"iss": self.issuer, "aud": API_AUDIENCE}
        if self.provider is Provider.ENTRA:
            claims.update(
                {
                    "tid": self.entra_tenant_id,
                    "oid": subject,
                    "ver": "2.0",
                    "scp": "access_as_user",
                    "sub": f"pairwise-{subject}",
                }
            )
        else:
            claims.update({"uid": subject, "sub": f"{subject}@example.com", "scp": ["asep.api"]})
        claims.update(extra)
        return claims

    def token(self, subject: str | None = None, **extra: Any) -> str:
        return self.idp.token(self.claims(subject or self.owner_subject, **extra))


@pytest.fixture(scope="module")
def entra_idp() -> Iterator[OidcProvider]:
    with running_oidc_provider() as provider:
        yield provider


@pytest.fixture(scope="module")
def okta_idp() -> Iterator[OidcProvider]:
    with running_oidc_provider() as provider:
        yield provider


def onboard_entra(idp: OidcProvider, label: str) -> Customer:
    tid = str(uuid.uuid4())
    owner = f"oid-{uuid.uuid4().hex[:12]}"
    tenant = provision_tenant(
        TenantCreate(slug=f"{label}-{uuid.uuid4().hex[:8]}", name=f"{label} corp"),
        SsoConnectionCreate(
            provider=Provider.ENTRA,
            entra_tenant_id=uuid.UUID(tid),
            audiences=[API_AUDIENCE],
            jwks_uri=idp.jwks_uri,
        ),
        UserCreate(issuer=entra_issuer(tid), subject=owner, role=Role.OWNER),
    )
    return Customer(tenant, idp, entra_issuer(tid), Provider.ENTRA, tid, owner)


def onboard_okta(idp: OidcProvider, label: str) -> Customer:
    owner = f"00u{uuid.uuid4().hex[:14]}"
    issuer = f"{idp.url}/oauth2/{uuid.uuid4().hex[:8]}"
    tenant = provision_tenant(
        TenantCreate(slug=f"{label}-{uuid.uuid4().hex[:8]}", name=f"{label} inc"),
        SsoConnectionCreate(
            provider=Provider.OKTA, issuer=issuer, audiences=[API_AUDIENCE], jwks_uri=idp.jwks_uri
        ),
        UserCreate(issuer=issuer, subject=owner, role=Role.OWNER),
    )
    return Customer(tenant, idp, issuer, Provider.OKTA, None, owner)


@pytest.fixture(scope="module")
def entra_customer(database: DatabaseUrls, entra_idp: OidcProvider) -> Customer:
    return onboard_entra(entra_idp, "contoso")


@pytest.fixture(scope="module")
def okta_customer(database: DatabaseUrls, okta_idp: OidcProvider) -> Customer:
    return onboard_okta(okta_idp, "initech")


@pytest.fixture
def client(database: DatabaseUrls) -> Iterator[TestClient]:
    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

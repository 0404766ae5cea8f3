"""An API client and a tenant whose dev users carry every role."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from http_api.app import create_app
from shared.db.server import DatabaseUrls
from shared.db.unit_of_work import tenant_unit_of_work
from shared.identity import dev_issuer
from shared.identity.model import Role
from shared.identity.schemas import TenantCreate, TenantRead
from shared.identity.service import provision_tenant


@pytest.fixture(scope="module")
def client(database: DatabaseUrls) -> Iterator[TestClient]:
    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def new_tenant(label: str) -> TenantRead:
    return provision_tenant(TenantCreate(slug=f"{label}-{uuid.uuid4().hex[:8]}", name=label))


def auth(tenant: TenantRead, role: Role = Role.ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {dev_issuer.dev_token(tenant.slug, role)}"}


def audit_events(tenant_id: uuid.UUID, event_type: str) -> list[dict[str, Any]]:
    with tenant_unit_of_work(tenant_id) as uow:
        rows = uow.execute(
            text(
                "SELECT event_json FROM audit_events WHERE tenant_id = :t AND event_type = :e "
                "ORDER BY seq"
            ),
            {"t": tenant_id, "e": event_type},
        ).scalars()
        return [dict(row) for row in rows]

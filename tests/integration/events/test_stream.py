"""GET /v1/events/stream refuses what it cannot serve with problem+json, before streaming."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from starlette.requests import Request

from http_api.events import stream_events
from shared.audit.schemas import Actor, ActorType, AuditEventType
from shared.audit.service import AuditChain
from shared.config import get_settings
from shared.db.server import DatabaseUrls
from shared.db.unit_of_work import tenant_unit_of_work
from shared.events.service import events_after, latest_seq
from shared.identity.authentication import Authenticator
from shared.identity.dev_issuer import dev_token
from shared.identity.model import Role
from shared.identity.schemas import TenantRead


def _request(headers: dict[str, str], query: str = "") -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/v1/events/stream",
            "query_string": query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }
    )


@pytest.mark.parametrize("after", ["latest", "%C2%B2", "9" * 30])
def test_an_unreadable_resume_point_is_refused_rather_than_skipped(
    tenant: TenantRead, after: str
) -> None:
    token = dev_token(tenant.slug, Role.OWNER)
    request = _request({"Authorization": f"Bearer {token}"}, f"after={after}")
    response = asyncio.run(stream_events(request, Authenticator(get_settings())))
    assert response.status_code == 422
    assert response.media_type == "application/problem+json"
    body = json.loads(bytes(response.body))
    assert body["code"] == "validation_failed"
    assert body["instance"] == "/v1/events/stream"


def test_no_token_is_a_401_problem_with_its_challenge(database: DatabaseUrls) -> None:
    response = asyncio.run(stream_events(_request({}), Authenticator(get_settings())))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="asep"'
    assert json.loads(bytes(response.body))["code"] == "unauthorized"


def test_the_feed_repeats_ids_and_never_free_text(tenant: TenantRead) -> None:
    approval_id = str(uuid.uuid4())
    with tenant_unit_of_work(tenant.id) as uow:
        before = latest_seq(tenant.id)
        AuditChain.append(
            uow,
            AuditEventType.APPROVAL_REJECTED,
            Actor(type=ActorType.USER, id="manager"),
            {"approval_id": approval_id, "reason": "Ana Smith told me she is on leave"},
            correlation_id="journey-1",
        )
    [event] = events_after(tenant.id, before)
    assert (event.type, event.correlation_id) == ("APPROVAL_REJECTED", "journey-1")
    assert event.refs == {"approval_id": approval_id}

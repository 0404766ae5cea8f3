"""Unsubscribe links: a GET only confirms, the RFC 8058 POST unsubscribes (once, audited)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

from shared.db.unit_of_work import tenant_unit_of_work
from shared.deliverability import suppression
from shared.deliverability.unsubscribe import (
    UnsubscribeSigner,
    unsubscribe_signer,
    unsubscribe_url,
)
from shared.mail.mime import Compliance, MessageContent, build_message
from tests.integration.deliverability.conftest import audit_events, new_tenant

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def _suppressed(tenant_id: uuid.UUID, address: str) -> bool:
    with tenant_unit_of_work(tenant_id) as uow:
        return suppression.check(uow, address).suppressed


def test_get_confirms_without_unsubscribing_and_post_unsubscribes_once(
    client: TestClient,
) -> None:
    tenant = new_tenant("unsub")
    path = urlsplit(unsubscribe_url(tenant.id, "Reader@Example.com")).path
    page = client.get(path)
    assert page.status_code == 200
    assert "reader@example.com" in page.text
    assert 'method="post"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert not _suppressed(tenant.id, "reader@example.com")

    for _ in range(3):
        done = client.post(path, data=ONE_CLICK)
        assert done.status_code == 200, done.text
        assert "unsubscribed" in done.text
    assert _suppressed(tenant.id, "reader@example.com")
    events = audit_events(tenant.id, "UNSUBSCRIBED")
    assert len(events) == 1
    assert events[0]["reason"] == "unsubscribe"


def test_one_click_works_as_multipart_too(client: TestClient) -> None:
    tenant = new_tenant("unsub-mp")
    path = urlsplit(unsubscribe_url(tenant.id, "mp@example.com")).path
    response = client.post(path, files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200, response.text
    assert _suppressed(tenant.id, "mp@example.com")


def test_bad_tokens_and_bodies_change_nothing(client: TestClient) -> None:
    tenant = new_tenant("unsub-bad")
    forged = UnsubscribeSigner(b"f" * 32).token(tenant.id, "victim@example.com")
    assert client.get(f"/u/{forged}").status_code == 404
    assert client.post(f"/u/{forged}", data=ONE_CLICK).status_code == 404
    assert client.post("/u/garbage", data=ONE_CLICK).status_code == 404
    real = unsubscribe_signer().token(tenant.id, "victim@example.com")
    assert client.post(f"/u/{real}").status_code == 422
    assert client.post(f"/u/{real}", data={"List-Unsubscribe": "Yes"}).status_code == 422
    assert not _suppressed(tenant.id, "victim@example.com")
    unknown_tenant = unsubscribe_signer().token(uuid.uuid4(), "x@example.com")
    assert client.post(f"/u/{unknown_tenant}", data=ONE_CLICK).status_code == 404


def test_a_token_only_unsubscribes_in_its_own_tenant(client: TestClient) -> None:
    first, second = new_tenant("unsub-a"), new_tenant("unsub-b")
    path = urlsplit(unsubscribe_url(first.id, "shared@example.com")).path
    assert client.post(path, data=ONE_CLICK).status_code == 200
    assert _suppressed(first.id, "shared@example.com")
    assert not _suppressed(second.id, "shared@example.com")


def test_headers_follow_rfc_8058() -> None:
    tenant_id = uuid.uuid4()
    raw = build_message(
        message_id="<rfc8058@sender.example>",
        date=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        sender="alex@sender.example",
        recipient="r@example.com",
        content=MessageContent("Hello", "Hi.", None),
        compliance=Compliance("1 Example Street", unsubscribe_url(tenant_id, "r@example.com")),
    )
    headers = BytesParser(policy=policy.default).parsebytes(raw)
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(headers["List-Unsubscribe"])
    assert link.startswith("<")
    assert link.endswith(">")
    token = urlsplit(link[1:-1]).path.removeprefix("/u/")
    assert unsubscribe_signer().verify(token).tenant_id == tenant_id

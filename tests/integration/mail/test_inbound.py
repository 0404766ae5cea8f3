"""Inbound: injected through the sandbox endpoint, stored once, threaded to the touch, signalled;
malformed and oversized messages are stored with a reason, never crash."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from http_api import sandbox as sandbox_routes
from http_api.app import create_app
from shared.config import Environment, Settings
from shared.db.server import DatabaseUrls
from shared.db.unit_of_work import TenantUnitOfWork, tenant_unit_of_work
from shared.deliverability import suppression
from shared.identity import dev_issuer
from shared.identity.model import Role
from shared.mail import inbound, sending
from shared.mail.factory import MailboxRef
from shared.mail.inbound import InMemoryReplySignal
from shared.mail.orm import InboundMail
from shared.mail.port import InboundMessage, InboundPage, InMemoryMailbox, Mailbox
from shared.mail.sandbox import deposit_inbound
from shared.mail.schemas import SendIntentCreate, SendIntentRead
from shared.replies import repository as replies_repository
from shared.replies import service as replies_service
from tests.integration.mail.conftest import FakeClock, MailTenant, make_mail_tenant
from tests.unit.replies.messages import dsn


@pytest.fixture(scope="module")
def signal() -> InMemoryReplySignal:
    return InMemoryReplySignal()


@pytest.fixture(scope="module")
def client(database: DatabaseUrls, signal: InMemoryReplySignal) -> Iterator[TestClient]:
    app = create_app()
    app.state.reply_signal = signal
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _headers(
    tenant: MailTenant, role: Role = Role.OPERATOR, content_type: str = "message/rfc822"
) -> dict[str, str]:
    token = dev_issuer.dev_token(tenant.tenant.slug, role)
    return {"Authorization": f"Bearer {token}", "Content-Type": content_type}


def _sent_touch(tenant: MailTenant, clock: FakeClock) -> SendIntentRead:
    with tenant_unit_of_work(tenant.id) as uow:
        intent = sending.record_send_intent(
            uow,
            SendIntentCreate(
                idempotency_key=f"{uuid.uuid4()}:t1",
                mailbox_id=tenant.mailbox_id,
                recipient="pat@buyer.example",
                subject="Idea",
                text="Hi Pat",
                campaign_id=uuid.uuid4(),
                prospect_id=uuid.uuid4(),
                correlation_id="journey-pat",
            ),
        ).intent
    sending.deliver(tenant.id, intent.id, clock=clock)
    return intent


def _reply(in_reply_to: str | None, references: str = "", message_id: str | None = None) -> bytes:
    lines = [
        "From: Pat Buyer <pat@buyer.example>",
        "To: rep@sender.example",
        "Subject: Re: Idea",
        f"Message-ID: {message_id or f'<{uuid.uuid4().hex}@buyer.example>'}",
        "Date: Mon, 02 Mar 2026 10:00:00 +0000",
    ]
    if in_reply_to:
        lines.append(f"In-Reply-To: {in_reply_to}")
    if references:
        lines.append(f"References: {references}")
    return ("\r\n".join(lines) + "\r\n\r\nSounds good, let's talk.\r\n").encode()


def test_reply_is_stored_once_threaded_and_signalled_once(
    client: TestClient, mail_tenant: MailTenant, clock: FakeClock, signal: InMemoryReplySignal
) -> None:
    touch = _sent_touch(mail_tenant, clock)
    raw = _reply(touch.message_id)
    url = f"/v1/sandbox/mailboxes/{mail_tenant.mailbox_id}/inbound"
    first = client.post(url, content=raw, headers=_headers(mail_tenant))
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["created"] is True
    assert body["inbound"]["intent_id"] == str(touch.id)
    assert body["inbound"]["prospect_id"] == str(touch.prospect_id)
    assert body["inbound"]["campaign_id"] == str(touch.campaign_id)
    again = client.post(url, content=raw, headers=_headers(mail_tenant))
    assert again.status_code == 202
    assert again.json()["created"] is False
    assert again.json()["inbound"]["id"] == body["inbound"]["id"]

    mine = [event for event in signal.raised if event.intent_id == touch.id]
    assert len(mine) == 1
    assert mine[0].inbound_id == uuid.UUID(body["inbound"]["id"])
    assert mine[0].prospect_id == touch.prospect_id
    assert mine[0].campaign_id == touch.campaign_id
    assert mine[0].correlation_id == "journey-pat"

    listed = client.get(
        f"/v1/sandbox/mailboxes/{mail_tenant.mailbox_id}/messages",
        headers=_headers(mail_tenant, Role.AUDITOR),
    )
    assert listed.status_code == 200
    directions = [item["direction"] for item in listed.json()["items"]]
    # The provider keeps both deliveries of the same reply; we stored it once.
    assert directions == ["sent", "inbound", "inbound"]


def test_threading_by_references_and_by_a_bounce_report(
    client: TestClient, mail_tenant: MailTenant, clock: FakeClock
) -> None:
    touch = _sent_touch(mail_tenant, clock)
    url = f"/v1/sandbox/mailboxes/{mail_tenant.mailbox_id}/inbound"
    by_references = client.post(
        url,
        content=_reply(None, references=f"<other@x.example> {touch.message_id}"),
        headers=_headers(mail_tenant),
    )
    assert by_references.json()["inbound"]["intent_id"] == str(touch.id)
    bounce = (
        "From: MAILER-DAEMON@buyer.example\r\nTo: rep@sender.example\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@buyer.example>\r\nSubject: Undeliverable\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
        'boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nNo such user\r\n'
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {touch.message_id}\r\n--b--\r\n"
    ).encode()
    reported = client.post(url, content=bounce, headers=_headers(mail_tenant))
    assert reported.json()["inbound"]["intent_id"] == str(touch.id)
    assert reported.json()["inbound"]["content_type"] == "multipart/report"


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\xff\xfe\x00 not a message at all",
        b"Subject: no other headers\r\n\r\nbody",
        b"From: \xff\xfe\r\nMessage-ID: <\x00bad@x>\r\nContent-Type: multipart/mixed\r\n\r\n--",
    ],
)
def test_malformed_messages_are_stored_with_a_reason(
    client: TestClient, mail_tenant: MailTenant, raw: bytes
) -> None:
    response = client.post(
        f"/v1/sandbox/mailboxes/{mail_tenant.mailbox_id}/inbound",
        content=raw,
        headers=_headers(mail_tenant),
    )
    assert response.status_code == 202, response.text
    stored = response.json()["inbound"]
    assert stored["reason"]
    assert stored["intent_id"] is None
    assert stored["problems"]


def test_ids_longer_than_a_header_line_are_ignored_not_a_crash(
    client: TestClient, mail_tenant: MailTenant, clock: FakeClock
) -> None:
    """A Message-ID of kilobytes of random characters overflowed the dedupe index (a 500,
    and a provider sync stuck on that message forever); it is junk, threading goes on."""
    touch = _sent_touch(mail_tenant, clock)
    junk = f"<{secrets.token_hex(2000)}@buyer.example>"
    raw = _reply(junk, references=f"{junk} {touch.message_id}", message_id=junk)
    for _ in range(2):
        response = client.post(
            f"/v1/sandbox/mailboxes/{mail_tenant.mailbox_id}/inbound",
            content=raw,
            headers=_headers(mail_tenant),
        )
        assert response.status_code == 202, response.text
    stored = response.json()["inbound"]
    assert stored["message_id"] is None
    assert stored["intent_id"] == str(touch.id)
    assert any("longer than 998" in problem for problem in stored["problems"])
    # Stored once: without a usable Message-ID the content hash deduplicates.
    assert not response.json()["created"]


def test_a_classification_failure_does_not_lose_the_message(
    client: TestClient,
    mail_tenant: MailTenant,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    touch = _sent_touch(mail_tenant, clock)

    def failing(uow: TenantUnitOfWork, inbound_id: uuid.UUID) -> None:
        replies_service.classify_inbound(uow, inbound_id)  # writes the reply, then fails
        raise RuntimeError("a bug after the writes")

    monkeypatch.setattr(replies_service, "classify_inbound", failing)
    response = client.post(
        f"/v1/sandbox/mailboxes/{mail_tenant.mailbox_id}/inbound",
        content=_reply(touch.message_id),
        headers=_headers(mail_tenant),
    )
    assert response.status_code == 202, response.text
    inbound_id = uuid.UUID(response.json()["inbound"]["id"])
    with tenant_unit_of_work(mail_tenant.id) as uow:
        assert [m.id for m in inbound.inbound_for_intents(uow, [touch.id])] == [inbound_id]
        # The failed classification left nothing behind; classify_reply will do it later.
        assert replies_repository.reply_for_inbound(uow, inbound_id) is None


def test_a_ten_megabyte_message_keeps_its_headers_and_threads(
    mail_tenant: MailTenant, clock: FakeClock
) -> None:
    touch = _sent_touch(mail_tenant, clock)
    raw = _reply(touch.message_id) + b"A" * (10 * 1024 * 1024 + 1)
    with tenant_unit_of_work(mail_tenant.id) as uow:
        result = inbound.ingest_raw(uow, mail_tenant.mailbox_id, raw)
    assert result.inbound.size_bytes == len(raw)
    assert result.inbound.reason
    assert result.inbound.reason.startswith("too_large")
    assert result.inbound.intent_id == touch.id


def test_sync_pulls_from_the_provider_and_rereading_stores_nothing_twice(
    mail_tenant: MailTenant, clock: FakeClock
) -> None:
    touch = _sent_touch(mail_tenant, clock)
    with tenant_unit_of_work(mail_tenant.id) as uow:
        deposit_inbound(uow, mail_tenant.mailbox_id, _reply(touch.message_id))
        deposit_inbound(uow, mail_tenant.mailbox_id, _reply(None))
    signal = InMemoryReplySignal()
    cursor = inbound.sync_mailbox(mail_tenant.id, mail_tenant.mailbox_id, signal)
    assert cursor is not None
    assert [event.intent_id for event in signal.raised] == [touch.id]
    assert inbound.sync_mailbox(mail_tenant.id, mail_tenant.mailbox_id, signal, after=cursor) == (
        cursor
    )
    inbound.sync_mailbox(mail_tenant.id, mail_tenant.mailbox_id, signal)  # from the start
    assert len(signal.raised) == 1
    with tenant_unit_of_work(mail_tenant.id) as uow:
        assert len(inbound.inbound_for_intents(uow, [touch.id])) == 1


def test_sync_classifies_on_arrival_so_an_unthreaded_bounce_suppresses(
    database: DatabaseUrls,
) -> None:
    tenant = make_mail_tenant("sync-bounce")
    # A bounce of a message we have no record of: nothing threads it, no journey hears of it.
    with tenant_unit_of_work(tenant.id) as uow:
        deposit_inbound(uow, tenant.mailbox_id, dsn("5.1.1", "550 5.1.1 user unknown"))
    signal = InMemoryReplySignal()
    inbound.sync_mailbox(tenant.id, tenant.mailbox_id, signal)
    assert signal.raised == []
    with tenant_unit_of_work(tenant.id) as uow:
        assert suppression.check(uow, "pat@buyer.example").suppressed
        (stored,) = uow.session.scalars(uow.scoped(InboundMail)).all()
        classified = replies_repository.reply_for_inbound(uow, stored.id)
        assert classified is not None
        assert (classified.label, classified.sub_label) == ("bounce", "hard")


def test_sync_works_through_the_port_with_any_provider(mail_tenant: MailTenant) -> None:
    fake = InMemoryMailbox(
        mail_tenant.address, inbound=[InboundMessage("p1", _reply(None), FakeClock().now)]
    )

    def resolver(tenant_id: uuid.UUID, mailbox: MailboxRef) -> Mailbox:
        return fake

    cursor = inbound.sync_mailbox(
        mail_tenant.id, mail_tenant.mailbox_id, InMemoryReplySignal(), mailboxes=resolver
    )
    assert cursor == "1"
    assert fake.list_inbound(cursor) == InboundPage([], "1")
    with tenant_unit_of_work(mail_tenant.id) as uow:
        again = inbound.ingest_raw(uow, mail_tenant.mailbox_id, _reply(None))
    assert again.created  # a different Message-ID: a different message


def test_permissions_media_type_and_tenant_scoping(
    client: TestClient, mail_tenant: MailTenant
) -> None:
    url = f"/v1/sandbox/mailboxes/{mail_tenant.mailbox_id}/inbound"
    assert client.post(
        url, content=b"x", headers=_headers(mail_tenant, Role.AUDITOR)
    ).status_code == (403)
    wrong_type = _headers(mail_tenant, content_type="application/json")
    assert client.post(url, content=b"{}", headers=wrong_type).status_code == 415
    other = make_mail_tenant("other")
    assert client.post(url, content=_reply(None), headers=_headers(other)).status_code == 404
    gmail = mail_tenant.add_mailbox("gmail")
    response = client.post(
        f"/v1/sandbox/mailboxes/{gmail}/inbound",
        content=_reply(None),
        headers=_headers(mail_tenant),
    )
    assert response.status_code == 409
    assert response.json()["code"] == "not_a_sandbox_mailbox"


def test_sandbox_routes_do_not_exist_in_azure(
    client: TestClient, mail_tenant: MailTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    azure = Settings(env=Environment.AZURE)
    monkeypatch.setattr(sandbox_routes, "get_settings", lambda: azure)
    response = client.get(
        f"/v1/sandbox/mailboxes/{mail_tenant.mailbox_id}/messages",
        headers=_headers(mail_tenant),
    )
    assert response.status_code == 404

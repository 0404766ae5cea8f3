"""classify_inbound end to end on PostgreSQL: stored once, intent events, suppression, health,
loops, bad input; the /v1 replies API with relabelling and its audit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from http_api.app import create_app
from shared.audit.orm import AuditEvent
from shared.db.server import DatabaseUrls
from shared.db.unit_of_work import TenantUnitOfWork, tenant_unit_of_work
from shared.deliverability import suppression
from shared.deliverability.orm import Mailbox
from shared.identity import dev_issuer
from shared.identity.model import Role
from shared.llm.offline import OfflineModel
from shared.llm.router import ModelRouter, TenantModelPolicy
from shared.mail import sending
from shared.mail.inbound import KEPT_PREFIX_BYTES, MAX_STORED_BYTES, ingest_raw
from shared.mail.orm import InboundMail, SendIntent
from shared.mail.schemas import SendIntentCreate, SendIntentRead
from shared.replies import service
from shared.replies.orm import IntentEvent, Reply, ReplyLabelRecord
from shared.replies.schemas import ClassifiedInbound, ReplyLabel, ReplyStatus
from tests.integration.mail.conftest import FakeClock, MailTenant, make_mail_tenant
from tests.unit.replies.messages import arf, dsn, human

RECIPIENT = "pat@buyer.example"


@pytest.fixture
def tenant(database: DatabaseUrls) -> MailTenant:
    return make_mail_tenant("replies")


def _touch(tenant: MailTenant, recipient: str = RECIPIENT) -> SendIntentRead:
    with tenant_unit_of_work(tenant.id) as uow:
        intent = sending.record_send_intent(
            uow,
            SendIntentCreate(
                idempotency_key=f"{uuid.uuid4()}:t1",
                mailbox_id=tenant.mailbox_id,
                recipient=recipient,
                subject="Quick idea",
                text="Hi Pat",
                campaign_id=uuid.uuid4(),
                prospect_id=uuid.uuid4(),
                correlation_id=f"journey-{uuid.uuid4().hex[:8]}",
            ),
        ).intent
    sending.deliver(tenant.id, intent.id, clock=FakeClock())
    return intent


def _threaded(raw: bytes, touch: SendIntentRead) -> bytes:
    """`raw` as an answer to `touch`, with a fresh Message-ID."""
    head, _, body = raw.partition(b"\n\n") if b"\r\n\r\n" not in raw else raw.partition(b"\r\n\r\n")
    sep = b"\r\n" if b"\r\n" in head else b"\n"
    lines = [ln for ln in head.split(sep) if not ln.lower().startswith(b"message-id:")]
    lines += [
        f"Message-ID: <{uuid.uuid4().hex}@buyer.example>".encode(),
        f"In-Reply-To: {touch.message_id}".encode(),
    ]
    return sep.join(lines) + sep + sep + body


def _ingest(tenant: MailTenant, raw: bytes) -> uuid.UUID:
    with tenant_unit_of_work(tenant.id) as uow:
        return ingest_raw(uow, tenant.mailbox_id, raw).inbound.id


def _classify(tenant: MailTenant, inbound_id: uuid.UUID) -> ClassifiedInbound:
    with tenant_unit_of_work(tenant.id) as uow:
        return service.classify_inbound(uow, inbound_id)


def _events(uow: TenantUnitOfWork, event_type: str) -> list[AuditEvent]:
    return list(
        uow.session.scalars(
            select(AuditEvent).where(
                AuditEvent.tenant_id == uow.tenant_id, AuditEvent.event_type == event_type
            )
        )
    )


def test_positive_reply_raises_one_intent_event_with_evidence(tenant: MailTenant) -> None:
    touch = _touch(tenant)
    inbound_id = _ingest(
        tenant, _threaded(human("Yes, let's talk. Does Thursday at 2pm work?"), touch)
    )
    first = _classify(tenant, inbound_id)
    assert first.created
    assert first.reply.label is ReplyLabel.POSITIVE
    assert first.reply.prospect_id == touch.prospect_id
    assert first.reply.recommendation
    assert first.intent_event_id is not None
    again = _classify(tenant, inbound_id)
    assert not again.created
    assert again.reply.id == first.reply.id
    assert again.intent_event_id == first.intent_event_id
    with tenant_unit_of_work(tenant.id) as uow:
        assert len(list(uow.session.scalars(uow.scoped(Reply)))) == 1
        event = uow.session.scalars(uow.scoped(IntentEvent)).one()
        assert event.confidence == first.reply.confidence
        assert event.evidence["excerpt"].startswith("Yes, let's talk")
        audited = _events(uow, "INTENT_EVENT_CREATED")
        assert len(audited) == 1
        assert audited[0].correlation_id == touch.correlation_id
        assert audited[0].event_json["confidence"] == first.reply.confidence
        assert "excerpt_sha256" in audited[0].event_json["evidence"]
        assert len(_events(uow, "REPLY_CLASSIFIED")) == 1


@pytest.mark.parametrize(
    ("raw", "label", "sub_label"),
    [
        (human("Please remove me from your mailing list."), ReplyLabel.UNSUBSCRIBE, None),
        (dsn("5.1.1", "550 5.1.1 User unknown"), ReplyLabel.BOUNCE, "hard"),
        (arf("abuse"), ReplyLabel.COMPLAINT, "abuse"),
    ],
)
def test_unsubscribe_hard_bounce_and_complaint_suppress_at_once(
    tenant: MailTenant, raw: bytes, label: ReplyLabel, sub_label: str | None
) -> None:
    touch = _touch(tenant)
    outcome = _classify(tenant, _ingest(tenant, _threaded(raw, touch)))
    assert (outcome.reply.label, outcome.reply.sub_label) == (label, sub_label)
    assert outcome.intent_event_id is None
    assert len(outcome.suppressed) == 1
    with tenant_unit_of_work(tenant.id) as uow:
        status = suppression.check(uow, RECIPIENT)
        assert status.suppressed
        assert status.reason == {"unsubscribe": "unsubscribe"}.get(label.value, label.value)
        # Filed under the journey the reply answered, next to the reply itself.
        kind = "UNSUBSCRIBED" if label is ReplyLabel.UNSUBSCRIBE else "SUPPRESSION_ADDED"
        assert [e.correlation_id for e in _events(uow, kind)] == [touch.correlation_id]


def test_soft_bounces_and_complaints_feed_the_mailbox_health(tenant: MailTenant) -> None:
    touches = [_touch(tenant, f"p{i}@buyer.example") for i in range(100)]
    outcome = _classify(
        tenant,
        _ingest(tenant, _threaded(dsn("4.2.2", "452 4.2.2 Mailbox full", "delayed"), touches[0])),
    )
    assert (outcome.reply.label, outcome.reply.sub_label) == (ReplyLabel.BOUNCE, "soft")
    assert outcome.health_updated
    assert not outcome.suppressed
    _classify(tenant, _ingest(tenant, _threaded(arf(), touches[1])))
    with tenant_unit_of_work(tenant.id) as uow:
        mailbox = uow.get(Mailbox, tenant.mailbox_id)
        assert mailbox is not None
        assert mailbox.health_sample_size == 100
        assert mailbox.bounce_rate == pytest.approx(0.01)
        # One complaint in 100 sends is 1%: past Gmail's 0.3% pause point.
        assert mailbox.complaint_rate == pytest.approx(0.01)
        assert mailbox.health_status == "pause"
        assert not suppression.check(uow, "p0@buyer.example").suppressed


def test_a_loop_of_auto_replies_stops_being_acted_on(tenant: MailTenant) -> None:
    touch = _touch(tenant)
    outcomes = [
        _classify(
            tenant,
            _ingest(
                tenant,
                _threaded(
                    human(
                        "I am out of the office until Monday.",
                        subject="Automatic reply: Re: Automatic reply",
                        headers={"Auto-Submitted": "auto-replied"},
                    ),
                    touch,
                ),
            ),
        )
        for _ in range(5)
    ]
    assert [o.reply.status for o in outcomes] == [ReplyStatus.CLASSIFIED] * 3 + [
        ReplyStatus.UNCLASSIFIABLE
    ] * 2
    assert outcomes[-1].reply.reason
    assert "loop" in outcomes[-1].reply.reason


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\xff\xfe\x00 not a message at all",
        b"Subject: no other headers\r\n\r\n",
        b"From: a@b.example\r\nContent-Type: text/plain; charset=bogus\r\n\r\nJa, gerne \xfc.\r\n",
        human("Yes, call me. " + "x" * (10 * 1024 * 1024)),
        human("<div>Let's meet on Monday.</div>", html=True),
    ],
)
def test_bad_input_is_stored_and_classified_or_marked(tenant: MailTenant, raw: bytes) -> None:
    touch = _touch(tenant)
    outcome = _classify(tenant, _ingest(tenant, _threaded(raw, touch)))
    assert outcome.created
    if outcome.reply.status is ReplyStatus.UNCLASSIFIABLE:
        assert outcome.reply.reason
    assert 0.0 <= outcome.reply.confidence <= 1.0
    with tenant_unit_of_work(tenant.id) as uow:
        # Nothing that arrives makes the platform send: the touch is the only intent.
        intents = select(SendIntent.id).where(SendIntent.tenant_id == tenant.id)
        assert list(uow.session.scalars(intents)) == [touch.id]


def _with_attachment(text: str, attachment_bytes: int) -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = "Pat Buyer <pat@buyer.example>"
    message["To"] = "sam@sender.example"
    message["Subject"] = "Re: Quick idea"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@buyer.example>"
    message.set_content(text)
    message.add_attachment(
        bytes(attachment_bytes), maintype="application", subtype="pdf", filename="deck.pdf"
    )
    return message.as_bytes()


def test_an_oversized_reply_is_cut_stored_and_still_classified(tenant: MailTenant) -> None:
    """Over 10 MiB (a deck attached), the stored copy is the first megabyte: enough for the
    text a person wrote, which comes before the attachment."""
    touch = _touch(tenant)
    raw = _threaded(_with_attachment("Yes, let's talk. Does Thursday at 2pm work?", 9 << 20), touch)
    assert len(raw) > MAX_STORED_BYTES
    inbound_id = _ingest(tenant, raw)
    outcome = _classify(tenant, inbound_id)
    assert outcome.reply.status is ReplyStatus.CLASSIFIED
    assert outcome.reply.label is ReplyLabel.POSITIVE
    assert outcome.intent_event_id is not None
    assert any(s.startswith("too-large") for s in outcome.reply.evidence["signals"])
    with tenant_unit_of_work(tenant.id) as uow:
        stored = uow.get(InboundMail, inbound_id)
        assert stored is not None
        assert stored.size_bytes == len(raw)
        assert stored.raw is not None
        assert len(stored.raw) <= KEPT_PREFIX_BYTES
        assert stored.reason is not None
        assert stored.reason.startswith("too_large")


def test_an_oversized_bounce_returning_the_whole_original_is_still_a_bounce(
    tenant: MailTenant,
) -> None:
    touch = _touch(tenant)
    report = dsn("5.1.1", "550 5.1.1 User unknown").replace(
        b"--b--", b"--b\r\nContent-Type: application/pdf\r\n\r\n" + b"A" * (11 << 20) + b"\r\n--b--"
    )
    outcome = _classify(tenant, _ingest(tenant, _threaded(report, touch)))
    assert (outcome.reply.label, outcome.reply.sub_label) == (ReplyLabel.BOUNCE, "hard")
    with tenant_unit_of_work(tenant.id) as uow:
        assert suppression.check(uow, RECIPIENT).suppressed


def test_the_router_path_uses_the_offline_answer_when_configured(tenant: MailTenant) -> None:
    tenant.set_settings(llm={"providers": ["offline"]})
    router = ModelRouter({"offline": OfflineModel()})
    inbound_id = _ingest(tenant, human("We already use Outreach and are happy with it."))
    with tenant_unit_of_work(tenant.id) as uow:
        model = service.RouterReplyModel(uow, router, TenantModelPolicy(("offline",)))
        outcome = service.classify_inbound(uow, inbound_id, model=model)
    assert outcome.reply.label is ReplyLabel.OBJECTION
    assert outcome.reply.evidence["source"] == "model:llm:offline:asep-offline-1"


@pytest.fixture(scope="module")
def client(database: DatabaseUrls) -> Iterator[TestClient]:
    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def _auth(tenant: MailTenant, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {dev_issuer.dev_token(tenant.tenant.slug, role)}"}


def test_api_lists_replies_and_intent_events_and_relabels(
    client: TestClient, tenant: MailTenant
) -> None:
    touch = _touch(tenant)
    positive = _classify(
        tenant, _ingest(tenant, _threaded(human("Sounds good, send an invite for Friday."), touch))
    )
    neutral = _classify(tenant, _ingest(tenant, human("Got it.")))
    listed = client.get("/v1/replies", headers=_auth(tenant, Role.AUDITOR))
    assert listed.status_code == 200, listed.text
    assert [item["id"] for item in listed.json()["items"]] == [
        str(positive.reply.id),
        str(neutral.reply.id),
    ]
    page = client.get("/v1/replies?limit=1", headers=_auth(tenant, Role.AUDITOR)).json()
    assert page["next_cursor"]
    events = client.get("/v1/intent-events", headers=_auth(tenant, Role.OPERATOR))
    assert [e["reply_id"] for e in events.json()["items"]] == [str(positive.reply.id)]

    url = f"/v1/replies/{neutral.reply.id}/label"
    assert (
        client.post(
            url, json={"label": "positive"}, headers=_auth(tenant, Role.AUDITOR)
        ).status_code
        == 403
    )
    relabelled = client.post(
        url,
        json={"label": "unsubscribe", "note": "asked on the phone"},
        headers=_auth(tenant, Role.OPERATOR),
    )
    assert relabelled.status_code == 200, relabelled.text
    assert relabelled.json()["human_label"] == "unsubscribe"
    unknown = client.post(
        f"/v1/replies/{uuid.uuid4()}/label",
        json={"label": "neutral"},
        headers=_auth(tenant, Role.OPERATOR),
    )
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    assert unknown.json()["code"] == "reply_not_found"
    with tenant_unit_of_work(tenant.id) as uow:
        record = uow.session.scalars(uow.scoped(ReplyLabelRecord)).one()
        assert (record.label, record.previous_label, record.reduced_text) == (
            "unsubscribe",
            neutral.reply.label.value,
            "Got it.",
        )
        audited = _events(uow, "REPLY_RELABELLED")
        assert audited[0].event_json["label"] == "unsubscribe"
        assert suppression.check(uow, "pat@buyer.example").suppressed

"""Effectively-once send against the sandbox mailbox: intents, deliver, reconcile, draft-only."""

from __future__ import annotations

import uuid
from email import policy
from email.parser import BytesParser

import pytest
from sqlalchemy import select

from shared.audit.orm import AuditEvent
from shared.campaigns.orm import Campaign
from shared.db.unit_of_work import tenant_unit_of_work
from shared.mail import sending
from shared.mail.factory import MailboxRef, MailProviderNotAvailable, mailbox_for
from shared.mail.orm import SendIntent
from shared.mail.port import (
    InMemoryMailbox,
    Mailbox,
    OutboundEmail,
    ProviderRejected,
    SendReceipt,
)
from shared.mail.sandbox import sent_message_ids, set_fault_plan
from shared.mail.schemas import (
    FaultPlan,
    NextAction,
    RecordedIntent,
    SendIntentCreate,
    SendStatus,
)
from tests.integration.mail.conftest import POSTAL_ADDRESS, FakeClock, MailTenant


def _request(tenant: MailTenant, key: str | None = None, **extra: object) -> SendIntentCreate:
    return SendIntentCreate.model_validate(
        {
            "idempotency_key": key or f"c:{uuid.uuid4()}:t1",
            "mailbox_id": tenant.mailbox_id,
            "recipient": "Pat@Buyer.example",
            "subject": "Idea for Buyer",
            "text": "Hi Pat, one idea.",
            "html": "<p>Hi Pat, one idea.</p>",
            **extra,
        }
    )


def _record(tenant: MailTenant, request: SendIntentCreate) -> RecordedIntent:
    with tenant_unit_of_work(tenant.id) as uow:
        return sending.record_send_intent(uow, request)


def _faults(tenant: MailTenant, **rates: float) -> None:
    with tenant_unit_of_work(tenant.id) as uow:
        set_fault_plan(uow, tenant.mailbox_id, FaultPlan.model_validate(rates))


def _sent_ids(tenant: MailTenant) -> list[str]:
    with tenant_unit_of_work(tenant.id) as uow:
        return sent_message_ids(uow, tenant.mailbox_id)


def _events(tenant: MailTenant, correlation_id: str) -> list[str]:
    with tenant_unit_of_work(tenant.id) as uow:
        return list(
            uow.session.scalars(
                select(AuditEvent.event_type)
                .where(AuditEvent.correlation_id == correlation_id)
                .order_by(AuditEvent.seq)
            )
        )


def test_record_twice_gives_one_intent_and_deliver_sends_those_bytes_once(
    mail_tenant: MailTenant, clock: FakeClock
) -> None:
    request = _request(mail_tenant, correlation_id="journey-1")
    first = _record(mail_tenant, request)
    second = _record(mail_tenant, request)
    assert first.created
    assert not second.created
    assert second.intent.id == first.intent.id
    assert second.intent.message_id == first.intent.message_id
    assert first.intent.status is SendStatus.PENDING
    assert first.intent.recipient == "pat@buyer.example"

    outcome = sending.deliver(mail_tenant.id, first.intent.id, clock=clock)
    assert outcome.status is SendStatus.SENT
    assert outcome.next_action is NextAction.NONE
    again = sending.deliver(mail_tenant.id, first.intent.id, clock=clock)
    assert again.status is SendStatus.SENT
    assert _sent_ids(mail_tenant) == [first.intent.message_id]

    with tenant_unit_of_work(mail_tenant.id) as uow:
        stored = uow.get(SendIntent, first.intent.id)
        assert stored is not None
        raw = stored.raw_message
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert message["Message-ID"] == first.intent.message_id
    assert message["From"].addresses[0].addr_spec == mail_tenant.address
    assert message["List-Unsubscribe"].startswith("<http://localhost:7071/u/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    body = message.get_body(("plain",))
    assert body is not None
    assert POSTAL_ADDRESS in body.get_content()

    assert _events(mail_tenant, "journey-1") == ["SEND_ATTEMPTED", "SEND_SUCCEEDED"]


def test_follow_up_is_threaded_to_the_first_touch(mail_tenant: MailTenant) -> None:
    first = _record(mail_tenant, _request(mail_tenant)).intent
    follow_up = _record(
        mail_tenant, _request(mail_tenant, subject="Re: Idea", reply_to_intent_id=first.id)
    ).intent
    assert follow_up.in_reply_to == first.message_id
    third = _record(
        mail_tenant, _request(mail_tenant, subject="Re: Idea", reply_to_intent_id=follow_up.id)
    ).intent
    with tenant_unit_of_work(mail_tenant.id) as uow:
        stored = uow.get(SendIntent, third.id)
        assert stored is not None
        message = BytesParser(policy=policy.default).parsebytes(stored.raw_message)
    assert message["In-Reply-To"] == follow_up.message_id
    assert message["References"].split() == [first.message_id, follow_up.message_id]


def test_unknown_outcome_is_reconciled_before_anything_is_resent(
    mail_tenant: MailTenant, clock: FakeClock
) -> None:
    _faults(mail_tenant, unknown_rate=1.0)
    intent = _record(mail_tenant, _request(mail_tenant)).intent
    outcome = sending.deliver(mail_tenant.id, intent.id, clock=clock)
    assert outcome.status is SendStatus.UNKNOWN
    assert outcome.next_action is NextAction.RECONCILE
    # The provider has it; another deliver must not call the provider again.
    assert sending.deliver(mail_tenant.id, intent.id, clock=clock).status is SendStatus.UNKNOWN
    assert _sent_ids(mail_tenant) == [intent.message_id]

    _faults(mail_tenant)
    reconciled = sending.reconcile(mail_tenant.id, intent.id, clock=clock)
    assert reconciled.status is SendStatus.SENT
    assert _sent_ids(mail_tenant) == [intent.message_id]
    assert _events(mail_tenant, intent.correlation_id or "") == [
        "SEND_ATTEMPTED",
        "SEND_FAILED",
        "SEND_RECONCILED",
        "SEND_SUCCEEDED",
    ]


def test_a_5xx_that_sent_nothing_is_resent_with_the_same_message_id(
    mail_tenant: MailTenant, clock: FakeClock
) -> None:
    _faults(mail_tenant, unavailable_rate=1.0)
    intent = _record(mail_tenant, _request(mail_tenant)).intent
    assert sending.deliver(mail_tenant.id, intent.id, clock=clock).status is SendStatus.UNKNOWN
    _faults(mail_tenant)
    reconciled = sending.reconcile(mail_tenant.id, intent.id, clock=clock)
    assert reconciled.status is SendStatus.PENDING
    assert reconciled.next_action is NextAction.DELIVER
    assert _sent_ids(mail_tenant) == []
    assert sending.deliver(mail_tenant.id, intent.id, clock=clock).status is SendStatus.SENT
    assert _sent_ids(mail_tenant) == [intent.message_id]


def test_throttling_waits_for_retry_after(mail_tenant: MailTenant, clock: FakeClock) -> None:
    _faults(mail_tenant, throttle_rate=1.0, retry_after_seconds=30)
    intent = _record(mail_tenant, _request(mail_tenant)).intent
    outcome = sending.deliver(mail_tenant.id, intent.id, clock=clock)
    assert outcome.status is SendStatus.PENDING
    assert outcome.next_action is NextAction.DELIVER
    assert outcome.retry_after_seconds == pytest.approx(30)
    _faults(mail_tenant)
    clock.advance(10)
    early = sending.deliver(mail_tenant.id, intent.id, clock=clock)
    assert early.status is SendStatus.PENDING
    assert early.retry_after_seconds == pytest.approx(20)
    assert _sent_ids(mail_tenant) == []
    clock.advance(20)
    assert sending.deliver(mail_tenant.id, intent.id, clock=clock).status is SendStatus.SENT


def test_rejection_holds_with_the_reason(mail_tenant: MailTenant, clock: FakeClock) -> None:
    fake = InMemoryMailbox(mail_tenant.address, failures=[ProviderRejected("550 5.7.1 policy")])

    def resolver(tenant_id: uuid.UUID, mailbox: MailboxRef) -> Mailbox:
        return fake

    intent = _record(mail_tenant, _request(mail_tenant)).intent
    outcome = sending.deliver(mail_tenant.id, intent.id, mailboxes=resolver, clock=clock)
    assert outcome.status is SendStatus.HELD
    assert outcome.reason == "rejected: 550 5.7.1 policy"
    assert sending.deliver(mail_tenant.id, intent.id, mailboxes=resolver, clock=clock).status == (
        SendStatus.HELD
    )
    assert fake.sent == []


def test_a_crash_mid_call_is_reconciled_after_the_lease(
    mail_tenant: MailTenant, clock: FakeClock
) -> None:
    class Crash(Exception):
        pass

    class CrashingMailbox(InMemoryMailbox):
        def send(self, message: OutboundEmail) -> SendReceipt:
            raise Crash

    crashing = CrashingMailbox(mail_tenant.address)

    def crash_resolver(tenant_id: uuid.UUID, mailbox: MailboxRef) -> Mailbox:
        return crashing

    intent = _record(mail_tenant, _request(mail_tenant)).intent
    with pytest.raises(Crash):
        sending.deliver(mail_tenant.id, intent.id, mailboxes=crash_resolver, clock=clock)
    # Another worker retries the activity while the claim is fresh: nothing is sent.
    busy = sending.deliver(mail_tenant.id, intent.id, clock=clock)
    assert busy.status is SendStatus.SENDING
    assert busy.retry_after_seconds == pytest.approx(sending.DEFAULT_LIMITS.lease_seconds)
    assert _sent_ids(mail_tenant) == []
    clock.advance(sending.DEFAULT_LIMITS.lease_seconds)
    assert sending.deliver(mail_tenant.id, intent.id, clock=clock).status is SendStatus.UNKNOWN
    assert sending.reconcile(mail_tenant.id, intent.id, clock=clock).status is SendStatus.PENDING
    assert sending.deliver(mail_tenant.id, intent.id, clock=clock).status is SendStatus.SENT
    assert _sent_ids(mail_tenant) == [intent.message_id]


def test_attempts_run_out_into_a_hold(mail_tenant: MailTenant, clock: FakeClock) -> None:
    _faults(mail_tenant, throttle_rate=1.0, retry_after_seconds=1)
    limits = sending.SendLimits(max_attempts=3)
    intent = _record(mail_tenant, _request(mail_tenant)).intent
    for _ in range(3):
        outcome = sending.deliver(mail_tenant.id, intent.id, clock=clock, limits=limits)
        clock.advance(1)
    assert outcome.status is SendStatus.HELD
    assert outcome.reason is not None
    assert outcome.reason.startswith("attempts_exhausted")


def test_draft_only_tenant_records_drafts_and_never_sends(
    mail_tenant: MailTenant, clock: FakeClock
) -> None:
    mail_tenant.set_settings(draft_only=True)
    recorded = _record(mail_tenant, _request(mail_tenant))
    assert recorded.intent.status is SendStatus.DRAFT
    outcome = sending.deliver(mail_tenant.id, recorded.intent.id, clock=clock)
    assert outcome.status is SendStatus.DRAFT
    assert outcome.next_action is NextAction.NONE
    assert _sent_ids(mail_tenant) == []


def test_draft_only_campaign_and_switching_it_on_before_delivery(
    mail_tenant: MailTenant, clock: FakeClock
) -> None:
    with tenant_unit_of_work(mail_tenant.id) as uow:
        campaign = uow.add(Campaign(name="C", settings={"draft_only": False}))
        uow.flush()
        campaign_id = campaign.id
    intent = _record(mail_tenant, _request(mail_tenant, campaign_id=campaign_id)).intent
    assert intent.status is SendStatus.PENDING
    with tenant_unit_of_work(mail_tenant.id) as uow:
        row = uow.get(Campaign, campaign_id)
        assert row is not None
        row.settings = {"draft_only": True}
    assert sending.deliver(mail_tenant.id, intent.id, clock=clock).status is SendStatus.DRAFT
    assert _sent_ids(mail_tenant) == []


def test_missing_postal_address_is_refused(mail_tenant: MailTenant) -> None:
    mail_tenant.set_settings(postal_address="")
    with pytest.raises(sending.MissingPostalAddress):
        _record(mail_tenant, _request(mail_tenant))


def test_gmail_and_graph_mailboxes_are_held_until_their_adapters_exist(
    mail_tenant: MailTenant, clock: FakeClock
) -> None:
    gmail = mail_tenant.add_mailbox("gmail")
    intent = _record(mail_tenant, _request(mail_tenant, mailbox_id=gmail)).intent
    outcome = sending.deliver(mail_tenant.id, intent.id, clock=clock)
    assert outcome.status is SendStatus.HELD
    assert outcome.reason is not None
    assert "provider_not_available" in outcome.reason
    with pytest.raises(MailProviderNotAvailable):
        mailbox_for(mail_tenant.id, MailboxRef(gmail, "x@y.example", "graph"))

"""Meeting booking on PostgreSQL: the activities' services (propose through the gate, a
choice by link or reply, booking with a free/busy re-check, deal and CRM), their
idempotency, and the meetings API with its public booking link."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from http_api.app import create_app
from shared.audit.orm import AuditEvent
from shared.audit.schemas import Actor, ActorType
from shared.calendar.sandbox import add_busy_block, events_between
from shared.campaigns.orm import Campaign
from shared.crm.orm import CrmObject
from shared.db.server import DatabaseUrls, libpq_dsn
from shared.db.unit_of_work import TenantUnitOfWork, tenant_unit_of_work
from shared.deals.orm import DealShadow
from shared.deliverability.schemas import SuppressionCreate
from shared.deliverability.suppression import add_suppression
from shared.identity import dev_issuer
from shared.identity.model import Role
from shared.mail import sending
from shared.mail.inbound import ingest_raw
from shared.mail.orm import SendIntent
from shared.mail.schemas import SendIntentCreate
from shared.meetings import service
from shared.meetings.orm import Meeting
from shared.meetings.schemas import (
    BookMeeting,
    MeetingBookingInput,
    MeetingReplyRoute,
    MeetingStatus,
    ProposeMeeting,
    StepOutcome,
)
from shared.prospects.orm import Company, Prospect
from tests.integration.catalog import tenant_tables
from tests.integration.mail.conftest import FakeClock, MailTenant, make_mail_tenant
from tests.unit.replies.messages import human

PROSPECT = "pat@buyer.example"
# Monday 2026-03-02 08:00 UTC: the proposal's slots fall on Mon-Wed of that week.
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
TIMEOUT = 3600


@dataclass
class Flow:
    tenant: MailTenant
    prospect_id: uuid.UUID
    campaign_id: uuid.UUID
    touch: SendIntent
    inbound_id: uuid.UUID

    @property
    def tenant_id(self) -> uuid.UUID:
        return self.tenant.id


def _reply(tenant: MailTenant, in_reply_to: str, text: str) -> uuid.UUID:
    raw = human(text, headers={"In-Reply-To": in_reply_to}).replace(
        b"<r1@buyer.example>", f"<{uuid.uuid4().hex}@buyer.example>".encode()
    )
    with tenant_unit_of_work(tenant.id) as uow:
        return ingest_raw(uow, tenant.mailbox_id, raw).inbound.id


def _flow(tenant: MailTenant) -> Flow:
    with tenant_unit_of_work(tenant.id) as uow:
        company = uow.add(Company(id=uuid.uuid4(), domain="buyer.example", name="Buyer Inc"))
        uow.flush()
        prospect = uow.add(
            Prospect(
                id=uuid.uuid4(),
                email=PROSPECT,
                first_name="Pat",
                company_id=company.id,
                time_zone="America/New_York",
            )
        )
        campaign = uow.add(
            Campaign(
                id=uuid.uuid4(),
                name="Meetings",
                status="active",
                settings={"mode": "full", "canary": {"enabled": False}},
            )
        )
        uow.flush()
        prospect_id, campaign_id = prospect.id, campaign.id
        intent = sending.record_send_intent(
            uow,
            SendIntentCreate(
                idempotency_key=f"{campaign_id}:{prospect_id}:t1",
                mailbox_id=tenant.mailbox_id,
                recipient=PROSPECT,
                subject="Quick idea",
                text="Hi Pat",
                campaign_id=campaign_id,
                prospect_id=prospect_id,
                step_id="t1",
                correlation_id=f"{campaign_id}:{prospect_id}",
            ),
        ).intent
    sending.deliver(tenant.id, intent.id, clock=FakeClock(NOW - timedelta(days=1)))
    with tenant_unit_of_work(tenant.id) as uow:
        touch = uow.get(SendIntent, intent.id)
        assert touch is not None
        uow.session.expunge(touch)
    inbound_id = _reply(tenant, intent.message_id, "Sounds good, happy to talk.")
    return Flow(tenant, prospect_id, campaign_id, touch, inbound_id)


@pytest.fixture
def flow(database: DatabaseUrls) -> Flow:
    return _flow(make_mail_tenant("meet"))


def _open(flow: Flow) -> uuid.UUID:
    opened = service.open_meeting(
        MeetingBookingInput(
            tenant_id=flow.tenant_id,
            inbound_id=flow.inbound_id,
            choice_timeout_seconds=TIMEOUT,
        )
    )
    assert opened.meeting_id is not None, opened
    return opened.meeting_id


def _propose(flow: Flow, meeting_id: uuid.UUID, round_: int = 1) -> Any:
    return service.propose(
        ProposeMeeting(
            tenant_id=flow.tenant_id,
            meeting_id=meeting_id,
            round=round_,
            choice_timeout_seconds=TIMEOUT,
        ),
        now=NOW,
    )


def _meeting(flow: Flow, meeting_id: uuid.UUID) -> Meeting:
    with tenant_unit_of_work(flow.tenant_id) as uow:
        meeting = uow.get(Meeting, meeting_id)
        assert meeting is not None
        uow.session.expunge(meeting)
        return meeting


def _events(uow: TenantUnitOfWork, prefix: str) -> list[AuditEvent]:
    return list(
        uow.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.tenant_id == uow.tenant_id, AuditEvent.event_type.like(prefix))
            .order_by(AuditEvent.seq)
        )
    )


def _sent_text(flow: Flow, intent_id: uuid.UUID | None) -> str:
    assert intent_id is not None
    with tenant_unit_of_work(flow.tenant_id) as uow:
        intent = uow.get(SendIntent, intent_id)
        assert intent is not None
        return intent.raw_message.decode()


def _token(text: str) -> str:
    found = re.search(r"/v1/meetings/book/([A-Za-z0-9_%.-]+)", text.replace("=\r\n", ""))
    assert found, text
    return found.group(1).replace("%2E", ".")


def test_the_catalog_sees_the_meetings_table(database: DatabaseUrls) -> None:
    with psycopg.connect(libpq_dsn(database.owner)) as conn:
        assert "meetings" in tenant_tables(conn)


def test_propose_book_by_link_then_deal_and_crm(flow: Flow) -> None:
    meeting_id = _open(flow)
    assert _open(flow) == meeting_id
    monday = datetime(2026, 3, 2, tzinfo=UTC)
    with tenant_unit_of_work(flow.tenant_id) as uow:
        add_busy_block(uow, flow.tenant.mailbox_id, monday, monday + timedelta(days=1))

    proposal = _propose(flow, meeting_id)
    assert proposal.outcome is StepOutcome.DONE
    assert _propose(flow, meeting_id).intent_id == proposal.intent_id  # a retry sends nothing new
    meeting = _meeting(flow, meeting_id)
    assert meeting.status == "proposed"
    assert meeting.time_zone == "America/New_York"
    # The rep (UTC mailbox) works 09:00-17:00 UTC; Monday is busy: Tue, Wed, Thu at 09:00 UTC,
    # which is 04:00 in New York and what the prospect reads.
    assert [s["start"] for s in meeting.proposed_slots] == [
        "2026-03-03T09:00:00Z",
        "2026-03-04T09:00:00Z",
        "2026-03-05T09:00:00Z",
    ]
    assert meeting.proposed_slots[0]["label"] == "Tuesday 3 March, 04:00 (America/New_York)"
    raw = _sent_text(flow, proposal.intent_id)
    assert "In-Reply-To: <" in raw
    assert "Option 2: Wednesday 4 March, 04:00 (America/New_York)" in raw
    assert "Re: Re: Quick idea" not in raw
    outcome = sending.deliver(flow.tenant_id, proposal.intent_id, clock=FakeClock(NOW))
    assert outcome.status.value == "sent"

    token = _token(raw)
    assert service.proposal_by_link(token, now=NOW).id == meeting_id
    chosen, choice = service.choose_by_link(token, 2, now=NOW)
    assert (choice.index, choice.source, choice.round) == (1, "link", 1)
    assert chosen.chosen_slot is not None
    with pytest.raises(service.MeetingChoiceClosed):
        service.choose_by_link(token, 1, now=NOW)
    with pytest.raises(service.MeetingLinkInvalid):
        service.proposal_by_link(token, now=NOW + timedelta(seconds=TIMEOUT + 1))

    request = BookMeeting(tenant_id=flow.tenant_id, meeting_id=meeting_id, round=1, index=1)
    booked = service.book(request)
    assert booked.outcome is StepOutcome.DONE
    assert service.book(request).calendar_event_uid == booked.calendar_event_uid
    with tenant_unit_of_work(flow.tenant_id) as uow:
        events = events_between(uow, flow.tenant.mailbox_id, NOW, NOW + timedelta(days=30))
    assert [(e.uid, e.start.isoformat()) for e in events] == [
        (booked.calendar_event_uid, "2026-03-04T09:00:00+00:00")
    ]
    ics = events[0].ics.decode()
    assert "METHOD:REQUEST" in ics
    assert "ATTENDEE" in ics
    assert PROSPECT in ics

    finished = service.finish_booking(flow.tenant_id, meeting_id)
    again = service.finish_booking(flow.tenant_id, meeting_id)
    assert finished.deal_id is not None
    assert again.deal_id == finished.deal_id
    with tenant_unit_of_work(flow.tenant_id) as uow:
        deals = list(uow.session.scalars(uow.scoped(DealShadow)))
        assert [(d.stage, d.source, d.status) for d in deals] == [
            ("MEETING_BOOKED", "meeting", "created")
        ]
        crm_meetings = list(
            uow.session.scalars(uow.scoped(CrmObject).where(CrmObject.object_type == "meeting"))
        )
        assert len(crm_meetings) == 1
        correlation = f"{flow.campaign_id}:{flow.prospect_id}"
        trail = {
            (e.event_type, e.correlation_id)
            for e in _events(uow, "MEETING_%") + _events(uow, "DEAL_%")
        }
        assert trail >= {
            ("MEETING_PROPOSED", correlation),
            ("MEETING_SLOT_CHOSEN", correlation),
            ("MEETING_BOOKED", correlation),
            ("DEAL_CREATED", correlation),
        }
        assert len(_events(uow, "MEETING_BOOKED")) == 1
        assert len(_events(uow, "MEETING_PROPOSED")) == 1


def test_a_slot_taken_meanwhile_is_not_booked_and_a_new_proposal_replaces_the_old(
    flow: Flow,
) -> None:
    meeting_id = _open(flow)
    first = _propose(flow, meeting_id)
    token = _token(_sent_text(flow, first.intent_id))
    slot = _meeting(flow, meeting_id).proposed_slots[0]
    start = datetime.fromisoformat(slot["start"])
    with tenant_unit_of_work(flow.tenant_id) as uow:
        add_busy_block(uow, flow.tenant.mailbox_id, start, start + timedelta(minutes=10))
    service.choose_by_link(token, 1, now=NOW)
    taken = service.book(
        BookMeeting(tenant_id=flow.tenant_id, meeting_id=meeting_id, round=1, index=0)
    )
    assert taken.outcome is StepOutcome.TAKEN
    assert _meeting(flow, meeting_id).status == "proposed"

    second = _propose(flow, meeting_id, round_=2)
    assert second.intent_id != first.intent_id
    meeting = _meeting(flow, meeting_id)
    assert meeting.proposal_round == 2
    assert meeting.chosen_index is None
    assert slot["start"] not in [s["start"] for s in meeting.proposed_slots]
    with pytest.raises(service.MeetingChoiceClosed):
        service.proposal_by_link(token, now=NOW)  # the first proposal's link is spent
    stale = service.book(
        BookMeeting(tenant_id=flow.tenant_id, meeting_id=meeting_id, round=1, index=1)
    )
    assert stale.outcome is StepOutcome.HELD
    assert _meeting(flow, meeting_id).status == "proposed"


def test_a_reply_that_picks_a_slot_is_routed_to_the_meeting_once(flow: Flow) -> None:
    meeting_id = _open(flow)
    proposal = _propose(flow, meeting_id)
    sending.deliver(flow.tenant_id, proposal.intent_id, clock=FakeClock(NOW))
    with tenant_unit_of_work(flow.tenant_id) as uow:
        intent = uow.get(SendIntent, proposal.intent_id)
        assert intent is not None
        proposal_message_id = intent.message_id

    unclear = _reply(flow.tenant, proposal_message_id, "Thanks! Let me check my calendar.")
    routed, instance = service.route_reply(
        MeetingReplyRoute(tenant_id=flow.tenant_id, inbound_id=unclear, label="positive")
    )
    assert (routed.routed, instance) == (False, None)

    away = _reply(flow.tenant, proposal_message_id, "Out of office until Tuesday 04:00.")
    routed, instance = service.route_reply(
        MeetingReplyRoute(tenant_id=flow.tenant_id, inbound_id=away, label="ooo")
    )
    assert (routed.routed, instance) == (False, None)

    pick = _reply(flow.tenant, proposal_message_id, "Option 3 works for me.")
    route = MeetingReplyRoute(tenant_id=flow.tenant_id, inbound_id=pick, label="positive")
    routed, instance = service.route_reply(route)
    assert routed.routed
    assert routed.choice is not None
    assert (routed.choice.index, routed.choice.source, routed.choice.round) == (2, "reply", 1)
    assert instance == f"meeting:{flow.inbound_id}"
    again, instance = service.route_reply(route)
    assert (again.routed, again.choice, instance) == (True, None, None)
    meeting = _meeting(flow, meeting_id)
    assert (meeting.chosen_index, meeting.choice_inbound_id) == (2, pick)
    # The reply that asked for the meeting is never read as its answer.
    own = MeetingReplyRoute(tenant_id=flow.tenant_id, inbound_id=flow.inbound_id, label="positive")
    assert service.route_reply(own)[0].routed is False


def test_a_declining_reply_and_the_timeout(flow: Flow) -> None:
    meeting_id = _open(flow)
    _propose(flow, meeting_id)
    no = _reply(flow.tenant, flow.touch.message_id, "Actually we went with someone else.")
    routed, instance = service.route_reply(
        MeetingReplyRoute(tenant_id=flow.tenant_id, inbound_id=no, label="objection")
    )
    assert routed.choice is not None
    assert routed.choice.declined
    assert instance is not None

    expired = service.expire(flow.tenant_id, meeting_id)
    assert expired.index is None
    meeting = _meeting(flow, meeting_id)
    assert meeting.status == MeetingStatus.EXPIRED.value
    assert service.expire(flow.tenant_id, meeting_id).index is None
    with tenant_unit_of_work(flow.tenant_id) as uow:
        assert len(_events(uow, "MEETING_ENDED")) == 1


def test_a_choice_recorded_before_the_timeout_still_books(flow: Flow) -> None:
    meeting_id = _open(flow)
    token = _token(_sent_text(flow, _propose(flow, meeting_id).intent_id))
    service.choose_by_link(token, 1, now=NOW)
    found = service.expire(flow.tenant_id, meeting_id)
    assert (found.index, found.round) == (0, 1)
    assert _meeting(flow, meeting_id).status == "proposed"


def test_the_gate_holds_a_proposal_to_a_suppressed_prospect(flow: Flow) -> None:
    meeting_id = _open(flow)
    with tenant_unit_of_work(flow.tenant_id) as uow:
        add_suppression(
            uow, SuppressionCreate(value=PROSPECT), Actor(type=ActorType.SYSTEM, id="tests")
        )
    held = _propose(flow, meeting_id)
    assert held.outcome is StepOutcome.HELD
    assert any("suppressed-recipient" in reason for reason in held.reasons)
    meeting = _meeting(flow, meeting_id)
    assert meeting.status == "held"
    assert meeting.proposal_intent_id is None
    with tenant_unit_of_work(flow.tenant_id) as uow:
        keys = list(uow.session.scalars(select(SendIntent.idempotency_key)))
    assert not [key for key in keys if key.startswith("meeting:")]


def test_one_meeting_in_progress_per_prospect(flow: Flow) -> None:
    _open(flow)
    later = _reply(flow.tenant, flow.touch.message_id, "Also, can we include my colleague?")
    opened = service.open_meeting(
        MeetingBookingInput(
            tenant_id=flow.tenant_id, inbound_id=later, choice_timeout_seconds=TIMEOUT
        )
    )
    assert opened.meeting_id is None
    assert opened.reason is not None
    assert "already proposing" in opened.reason


def test_working_hours_come_from_the_tenants_settings(flow: Flow) -> None:
    flow.tenant.set_settings(
        meeting_hours_by_mailbox={
            str(flow.tenant.mailbox_id): {
                "start": "13:00",
                "end": "15:00",
                "days": ["fri"],
                "time_zone": "Europe/Berlin",
                "duration_minutes": 45,
            }
        }
    )
    meeting_id = _open(flow)
    _propose(flow, meeting_id)
    meeting = _meeting(flow, meeting_id)
    assert (meeting.rep_time_zone, meeting.duration_minutes) == ("Europe/Berlin", 45)
    berlin = ZoneInfo("Europe/Berlin")
    starts = [datetime.fromisoformat(s["start"]).astimezone(berlin) for s in meeting.proposed_slots]
    # Two Fridays are inside the horizon: the first of each, then the next of the first.
    assert [s.strftime("%a %d %H:%M") for s in starts] == [
        "Fri 06 13:00",
        "Fri 06 13:30",
        "Fri 13 13:00",
    ]
    ends = [datetime.fromisoformat(s["end"]) for s in meeting.proposed_slots]
    assert {
        (e - datetime.fromisoformat(s["start"]))
        for e, s in zip(ends, meeting.proposed_slots, strict=True)
    } == {timedelta(minutes=45)}


@pytest.fixture
def client(database: DatabaseUrls) -> Iterator[TestClient]:
    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def test_meetings_api_and_the_booking_link(client: TestClient, flow: Flow) -> None:
    meeting_id = _open(flow)
    proposal = service.propose(
        ProposeMeeting(
            tenant_id=flow.tenant_id,
            meeting_id=meeting_id,
            round=1,
            choice_timeout_seconds=TIMEOUT,
        )
    )
    token = _token(_sent_text(flow, proposal.intent_id))
    viewer = {
        "Authorization": f"Bearer {dev_issuer.dev_token(flow.tenant.tenant.slug, Role.OPERATOR)}"
    }

    listed = client.get("/v1/meetings", headers=viewer)
    assert listed.status_code == 200, listed.text
    assert [m["id"] for m in listed.json()["items"]] == [str(meeting_id)]
    for params, count in (
        ({"status": "proposed"}, 1),
        ({"status": "booked"}, 0),
        ({"prospect_id": str(flow.prospect_id)}, 1),
        ({"campaign_id": str(uuid.uuid4())}, 0),
        ({"campaign_id": str(flow.campaign_id)}, 1),
    ):
        assert len(client.get("/v1/meetings", headers=viewer, params=params).json()["items"]) == (
            count
        ), params
    one = client.get(f"/v1/meetings/{meeting_id}", headers=viewer)
    assert one.status_code == 200
    assert len(one.json()["proposed_slots"]) == 3
    assert client.get(f"/v1/meetings/{uuid.uuid4()}", headers=viewer).status_code == 404
    assert client.get("/v1/meetings").status_code == 401

    other = make_mail_tenant("meet-other")
    foreign = {"Authorization": f"Bearer {dev_issuer.dev_token(other.tenant.slug, Role.OPERATOR)}"}
    assert client.get("/v1/meetings", headers=foreign).json()["items"] == []
    assert client.get(f"/v1/meetings/{meeting_id}", headers=foreign).status_code == 404

    page = client.get(f"/v1/meetings/book/{token}")
    assert page.status_code == 200
    assert page.text.count('name="option"') == 3
    assert _meeting(flow, meeting_id).chosen_index is None  # a GET never chooses
    unproposed = client.post(f"/v1/meetings/book/{token}", data={"option": "4"})
    assert unproposed.status_code == 409
    assert unproposed.json()["code"] == "meeting_choice_closed"
    not_a_number = client.post(f"/v1/meetings/book/{token}", data={"option": "second"})
    assert not_a_number.status_code == 422
    assert not_a_number.json()["code"] == "validation_failed"
    assert _meeting(flow, meeting_id).chosen_index is None  # the link still takes a choice
    picked = client.post(f"/v1/meetings/book/{token}", data={"option": "3"})
    assert picked.status_code == 200, picked.text
    assert _meeting(flow, meeting_id).chosen_index == 2
    used = client.post(f"/v1/meetings/book/{token}", data={"option": "1"})
    assert used.status_code == 409
    assert used.json()["code"] == "meeting_choice_closed"
    forged = client.get(f"/v1/meetings/book/{token[:-2]}xx")
    assert forged.status_code == 404
    assert forged.json()["code"] == "meeting_link_invalid"

    document = client.get("/openapi.json").json()
    assert document["paths"]["/v1/meetings"]["get"]["x-asep-permission"] == "meetings:read"
    assert document["paths"]["/v1/meetings/book/{token}"]["post"]["x-asep-permission"] == "public"


def test_the_invitation_passes_the_gate_too(flow: Flow) -> None:
    meeting_id = _open(flow)
    token = _token(_sent_text(flow, _propose(flow, meeting_id).intent_id))
    service.choose_by_link(token, 1, now=NOW)
    with tenant_unit_of_work(flow.tenant_id) as uow:
        add_suppression(
            uow, SuppressionCreate(value=PROSPECT), Actor(type=ActorType.SYSTEM, id="tests")
        )
    held = service.book(
        BookMeeting(tenant_id=flow.tenant_id, meeting_id=meeting_id, round=1, index=0)
    )
    assert held.outcome is StepOutcome.HELD
    assert _meeting(flow, meeting_id).status == "held"
    with tenant_unit_of_work(flow.tenant_id) as uow:
        assert events_between(uow, flow.tenant.mailbox_id, NOW, NOW + timedelta(days=30)) == []


def test_a_booking_interrupted_after_the_calendar_call_completes_once(flow: Flow) -> None:
    meeting_id = _open(flow)
    token = _token(_sent_text(flow, _propose(flow, meeting_id).intent_id))
    service.choose_by_link(token, 1, now=NOW)
    request = BookMeeting(tenant_id=flow.tenant_id, meeting_id=meeting_id, round=1, index=0)
    first = service.book(request)
    # As if the activity died after the provider created the event, before its last commit:
    # the calendar now shows the slot busy with our own event.
    with tenant_unit_of_work(flow.tenant_id) as uow:
        meeting = uow.get(Meeting, meeting_id)
        assert meeting is not None
        meeting.status = "booking"
    again = service.book(request)
    assert (again.outcome, again.calendar_event_uid) == (
        StepOutcome.DONE,
        first.calendar_event_uid,
    )
    with tenant_unit_of_work(flow.tenant_id) as uow:
        assert len(events_between(uow, flow.tenant.mailbox_id, NOW, NOW + timedelta(days=30))) == 1
    assert _meeting(flow, meeting_id).status == "booked"


def test_a_mailbox_without_a_calendar_adapter_holds_the_meeting(flow: Flow) -> None:
    graph = flow.tenant.add_mailbox("graph")
    with tenant_unit_of_work(flow.tenant_id) as uow:
        meeting = uow.get(Meeting, _open(flow))
        assert meeting is not None
        meeting.mailbox_id = graph
        meeting_id = meeting.id
    held = _propose(flow, meeting_id)
    assert held.outcome is StepOutcome.HELD
    assert "calendar adapter" in held.reasons[0]
    assert _meeting(flow, meeting_id).status == "held"

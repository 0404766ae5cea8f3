"""The work behind meeting_booking's activities and the meetings API.

Each orchestration step is one function with its own unit(s) of work, idempotent because an
activity may run more than once: the proposal is a send intent keyed by meeting and round
(recorded with the policy decision in one transaction, delivered by mail's effectively-once
functions); the booking marks the meeting `booking` before the calendar call and the event's
UID is the meeting's, so a retry creates nothing twice. Calendar calls happen outside any
transaction of ours (the provider is remote; the sandbox opens its own).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from shared.audit.schemas import Actor, ActorType, AuditEventType
from shared.audit.service import AuditChain
from shared.calendar.factory import calendar_for
from shared.calendar.port import Attendee, CalendarError, EventRequest
from shared.campaigns.orm import Campaign
from shared.campaigns.schemas import CampaignSettings
from shared.crm.port import ContactUpsert, MeetingLog
from shared.crm.service import audit_crm_writes, crm_for
from shared.db.unit_of_work import TenantUnitOfWork, tenant_unit_of_work
from shared.deals.schemas import MeetingDeal
from shared.deals.service import deal_for_meeting
from shared.deliverability.orm import Mailbox
from shared.drafting.service import footer
from shared.errors import Conflict, NotFound
from shared.execution.orm import CampaignMember
from shared.execution.service import sender_profile
from shared.identity.orm import Tenant
from shared.mail import sending
from shared.mail.factory import MailboxRef, MailProviderNotAvailable
from shared.mail.orm import InboundMail, SendIntent
from shared.mail.schemas import SendIntentCreate, SendStatus
from shared.meetings import repository
from shared.meetings.links import BookingClaim, InvalidBookingToken, booking_signer, booking_url
from shared.meetings.model import Slot, describe, parse_choice, propose_slots
from shared.meetings.orm import Meeting
from shared.meetings.schemas import (
    OPEN_STATUSES,
    BookingResult,
    BookMeeting,
    EndMeeting,
    MeetingBookingInput,
    MeetingHours,
    MeetingOpened,
    MeetingPage,
    MeetingRead,
    MeetingReplyRoute,
    MeetingStatus,
    ProposalResult,
    ProposedSlot,
    ProposeMeeting,
    RoutedReply,
    SlotChoice,
    StepOutcome,
)
from shared.pagination import decode_time_cursor, encode_time_cursor
from shared.policy.gate import GateOutcome, SendRequest, check_send
from shared.prospects.orm import Prospect
from shared.replies.reduce import message_text, new_text
from shared.replies.schemas import ReplyLabel

MEETINGS_ACTOR = Actor(type=ActorType.SYSTEM, id="meeting-booking", display="Meeting booking")
# Replies that end an open proposal instead of choosing from it.
DECLINING_LABELS = frozenset({ReplyLabel.OBJECTION.value, ReplyLabel.UNSUBSCRIBE.value})
# Only a person's answer is read for a pick: an out-of-office note saying "back Monday 9:00"
# must not book Monday's 09:00 slot.
CHOOSING_LABELS = frozenset({ReplyLabel.POSITIVE.value, ReplyLabel.NEUTRAL.value})
TERMINAL = frozenset(MeetingStatus) - OPEN_STATUSES


class MeetingNotFound(NotFound):
    code = "meeting_not_found"
    title = "Meeting not found"


class MeetingChoiceClosed(Conflict):
    code = "meeting_choice_closed"
    title = "This meeting no longer takes a choice"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _read(meeting: Meeting) -> MeetingRead:
    return MeetingRead.model_validate(meeting)


def _audit(
    uow: TenantUnitOfWork,
    event_type: AuditEventType,
    meeting: Meeting,
    extra: dict[str, Any] | None = None,
    actor: Actor = MEETINGS_ACTOR,
) -> None:
    payload: dict[str, Any] = {
        "meeting_id": str(meeting.id),
        "prospect_id": str(meeting.prospect_id),
        "campaign_id": str(meeting.campaign_id) if meeting.campaign_id else None,
        "inbound_id": str(meeting.inbound_id),
        "status": meeting.status,
    }
    payload.update(extra or {})
    AuditChain.append(uow, event_type, actor, payload, correlation_id=meeting.correlation_id)


def _lock(uow: TenantUnitOfWork, meeting_id: uuid.UUID) -> Meeting:
    meeting = uow.session.scalars(
        uow.scoped(Meeting).where(Meeting.id == meeting_id).with_for_update()
    ).one_or_none()
    if meeting is None:
        raise MeetingNotFound(f"Meeting {meeting_id} does not exist.")
    return meeting


def meeting_hours(uow: TenantUnitOfWork, mailbox_id: uuid.UUID) -> MeetingHours:
    """The rep's hours: the mailbox's own entry in `meeting_hours_by_mailbox`, else the
    tenant's `meeting_hours`, else Monday to Friday 09:00-17:00."""
    tenant = uow.session.get(Tenant, uow.tenant_id)
    settings = dict(tenant.settings) if tenant is not None else {}
    by_mailbox = settings.get("meeting_hours_by_mailbox") or {}
    raw = by_mailbox.get(str(mailbox_id)) or settings.get("meeting_hours") or {}
    return MeetingHours.model_validate(raw)


def _prospect_zone(uow: TenantUnitOfWork, prospect: Prospect, campaign_id: uuid.UUID | None) -> str:
    if prospect.time_zone:
        return prospect.time_zone
    campaign = uow.get(Campaign, campaign_id) if campaign_id else None
    if campaign is not None:
        return CampaignSettings.model_validate(campaign.settings).send_window.time_zone
    return "UTC"


def open_meeting(flow: MeetingBookingInput) -> MeetingOpened:
    """The meeting row for this reply (created once), or why there is none: the reply has no
    prospect, or the prospect already has an open or upcoming meeting."""
    with tenant_unit_of_work(flow.tenant_id) as uow:
        existing = repository.for_inbound(uow, flow.inbound_id)
        if existing is not None:
            return MeetingOpened(meeting_id=existing.id, status=MeetingStatus(existing.status))
        inbound = uow.get(InboundMail, flow.inbound_id)
        if inbound is None or inbound.prospect_id is None:
            return MeetingOpened(reason="the reply is not from a known prospect")
        prospect = uow.get(Prospect, inbound.prospect_id)
        mailbox = uow.get(Mailbox, inbound.mailbox_id)
        if prospect is None or mailbox is None:
            return MeetingOpened(reason="the prospect or the mailbox no longer exists")
        other = repository.current_for_prospect(uow, prospect.id, _utc_now())
        if other is not None:
            return MeetingOpened(
                reason=f"meeting {other.id} for this prospect is already {other.status}"
            )
        hours = meeting_hours(uow, mailbox.id)
        correlation = flow.correlation_id
        if correlation is None and inbound.intent_id is not None:
            intent = uow.get(SendIntent, inbound.intent_id)
            correlation = intent.correlation_id if intent else None
        uow.execute(
            insert(Meeting)
            .values(
                id=uuid.uuid4(),
                tenant_id=uow.tenant_id,
                prospect_id=prospect.id,
                campaign_id=inbound.campaign_id,
                inbound_id=inbound.id,
                mailbox_id=mailbox.id,
                status=MeetingStatus.PROPOSING.value,
                time_zone=_prospect_zone(uow, prospect, inbound.campaign_id),
                rep_time_zone=hours.time_zone or mailbox.time_zone,
                duration_minutes=hours.duration_minutes,
                proposed_slots=[],
                proposal_round=0,
                correlation_id=correlation,
                orchestration_instance_id=flow.instance_id,
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "inbound_id"])
        )
        meeting = repository.for_inbound(uow, flow.inbound_id)
        assert meeting is not None
        return MeetingOpened(meeting_id=meeting.id, status=MeetingStatus(meeting.status))


def _slot_json(slot: Slot, zone: str) -> dict[str, Any]:
    return ProposedSlot(
        start=slot.start, end=slot.end, local_start=slot.local(zone), label=describe(slot, zone)
    ).model_dump(mode="json")


def _slots(meeting: Meeting) -> list[Slot]:
    return [
        Slot(datetime.fromisoformat(s["start"]), datetime.fromisoformat(s["end"]))
        for s in meeting.proposed_slots
    ]


def _touch_number(uow: TenantUnitOfWork, meeting: Meeting) -> int:
    sent = uow.session.scalars(
        select(SendIntent.id).where(
            SendIntent.tenant_id == uow.tenant_id,
            SendIntent.prospect_id == meeting.prospect_id,
            SendIntent.status == SendStatus.SENT.value,
        )
    ).all()
    return len(sent) + 1


def _canary(uow: TenantUnitOfWork, meeting: Meeting) -> tuple[bool, bool]:
    """(the prospect was in the campaign's canary batch, the canary passed): the answer to a
    canary prospect's reply may go out while the canary is still under observation."""
    if meeting.campaign_id is None:
        return False, False
    campaign = uow.get(Campaign, meeting.campaign_id)
    member = uow.session.scalars(
        uow.scoped(CampaignMember).where(
            CampaignMember.campaign_id == meeting.campaign_id,
            CampaignMember.prospect_id == meeting.prospect_id,
        )
    ).one_or_none()
    return bool(member and member.canary), bool(campaign and campaign.canary_passed_at)


def _gate(
    uow: TenantUnitOfWork,
    meeting: Meeting,
    prospect: Prospect,
    mailbox: Mailbox,
    *,
    action_id: str,
    subject: str,
    body: str,
) -> tuple[GateOutcome, list[str], datetime | None]:
    """The outbound gate, as for every touch: policy, suppression, kill switch and caps."""
    canary_send, canary_passed = _canary(uow, meeting)
    as_sent = body + footer(
        sender_profile(uow, mailbox), sending.list_unsubscribe_url(uow.tenant_id, prospect.email)
    )
    result = check_send(
        uow,
        SendRequest(
            action_id=action_id,
            mailbox_id=mailbox.id,
            recipient=prospect.email,
            campaign_id=meeting.campaign_id,
            prospect_id=prospect.id,
            touch_number=_touch_number(uow, meeting),
            subject=subject,
            body=as_sent,
            replied_before=True,
            canary_send=canary_send,
            canary_passed=canary_passed,
            correlation_id=meeting.correlation_id,
        ),
        MEETINGS_ACTOR,
    )
    reasons = [f"{r.rule_id}: {r.text}" for r in result.decision.reasons]
    if result.outcome is GateOutcome.CAP_REFUSED and result.cap_refusal is not None:
        return (
            result.outcome,
            [f"cap {result.cap_refusal.scope.value} reached"],
            (result.cap_refusal.retry_at),
        )
    return result.outcome, reasons or [result.outcome.value], None


def _end(uow: TenantUnitOfWork, meeting: Meeting, status: MeetingStatus, reason: str) -> None:
    if MeetingStatus(meeting.status) in TERMINAL:
        return
    meeting.status = status.value
    meeting.status_reason = reason[:2000]
    uow.flush()
    _audit(uow, AuditEventType.MEETING_ENDED, meeting, {"reason": meeting.status_reason})


def _proposal_text(
    prospect: Prospect, labels: list[str], link: str, minutes: int, sender: str
) -> str:
    greeting = f"Hi {prospect.first_name}," if prospect.first_name else "Hi,"
    options = "\n".join(f"  Option {n}: {label}" for n, label in enumerate(labels, start=1))
    return (
        f"{greeting}\n\nGreat to hear from you. Here are a few times for a {minutes}-minute "
        f"call:\n\n{options}\n\nReply with the option that suits you (for example "
        f'"Option 1"), or pick it here: {link}\n\nBest,\n{sender}'
    )


def _subject(inbound: InboundMail | None) -> str:
    subject = (inbound.subject if inbound else None) or "Our conversation"
    return subject if subject.lower().startswith("re:") else f"Re: {subject}"


def propose(request: ProposeMeeting, now: datetime | None = None) -> ProposalResult:
    """Free/busy, three slots, the gate, and the proposal's send intent (MEETING_PROPOSED)."""
    moment = now or _utc_now()
    with tenant_unit_of_work(request.tenant_id) as uow:
        meeting = uow.get(Meeting, request.meeting_id)
        if meeting is None:
            raise MeetingNotFound(f"Meeting {request.meeting_id} does not exist.")
        if meeting.proposal_round >= request.round and meeting.proposal_intent_id is not None:
            return ProposalResult(outcome=StepOutcome.DONE, intent_id=meeting.proposal_intent_id)
        if MeetingStatus(meeting.status) in TERMINAL:
            return ProposalResult(outcome=StepOutcome.HELD, reasons=[meeting.status_reason or ""])
        mailbox = uow.get(Mailbox, meeting.mailbox_id)
        assert mailbox is not None
        mailbox_ref = MailboxRef.of(mailbox)
        hours = meeting_hours(uow, mailbox.id)
    rules = hours.rules()
    try:
        calendar = calendar_for(request.tenant_id, mailbox_ref)
    except MailProviderNotAvailable as exc:
        return _hold(request.tenant_id, request.meeting_id, str(exc))
    try:
        busy = calendar.free_busy(moment, moment + timedelta(days=rules.horizon_days + 1))
    except CalendarError as exc:
        if exc.retryable:
            raise
        return _hold(request.tenant_id, request.meeting_id, f"the calendar refused: {exc}")
    slots = propose_slots(moment, busy, hours.working_hours(meeting.rep_time_zone), rules)
    if not slots:
        return _hold(
            request.tenant_id,
            request.meeting_id,
            f"no free {rules.duration.seconds // 60}-minute slot in the rep's working hours "
            f"in the next {rules.horizon_days} days",
        )
    with tenant_unit_of_work(request.tenant_id) as uow:
        meeting = _lock(uow, request.meeting_id)
        if meeting.proposal_round >= request.round and meeting.proposal_intent_id is not None:
            return ProposalResult(outcome=StepOutcome.DONE, intent_id=meeting.proposal_intent_id)
        prospect = uow.get(Prospect, meeting.prospect_id)
        mailbox = uow.get(Mailbox, meeting.mailbox_id)
        inbound = uow.get(InboundMail, meeting.inbound_id)
        assert prospect is not None
        assert mailbox is not None
        proposed = [_slot_json(slot, meeting.time_zone) for slot in slots]
        link = booking_url(
            BookingClaim(
                uow.tenant_id,
                meeting.id,
                request.round,
                moment + timedelta(seconds=request.choice_timeout_seconds),
            )
        )
        sender = sender_profile(uow, mailbox)
        subject = _subject(inbound)
        text = _proposal_text(
            prospect, [s["label"] for s in proposed], link, meeting.duration_minutes, sender.name
        )
        key = f"meeting:{meeting.id}:proposal:{request.round}"
        outcome, reasons, retry_at = _gate(
            uow, meeting, prospect, mailbox, action_id=key, subject=subject, body=text
        )
        if outcome is GateOutcome.CAP_REFUSED:
            return ProposalResult(outcome=StepOutcome.WAIT, wait_until=retry_at, reasons=reasons)
        if outcome is not GateOutcome.ALLOWED:
            _end(uow, meeting, MeetingStatus.HELD, "; ".join(reasons))
            return ProposalResult(outcome=StepOutcome.HELD, reasons=reasons)
        recorded = sending.record_send_intent(
            uow,
            SendIntentCreate(
                idempotency_key=key,
                mailbox_id=mailbox.id,
                recipient=prospect.email,
                recipient_name=" ".join(p for p in (prospect.first_name, prospect.last_name) if p)
                or None,
                sender_name=sender.name,
                subject=subject,
                text=text,
                campaign_id=meeting.campaign_id,
                prospect_id=prospect.id,
                reply_to_inbound_id=meeting.inbound_id,
                correlation_id=meeting.correlation_id,
            ),
        )
        meeting.proposed_slots = proposed
        meeting.proposal_round = request.round
        meeting.proposal_intent_id = recorded.intent.id
        meeting.chosen_index = None
        meeting.chosen_slot = None
        meeting.choice_source = None
        meeting.choice_inbound_id = None
        meeting.status = MeetingStatus.PROPOSED.value
        meeting.proposed_at = moment
        uow.flush()
        _audit(
            uow,
            AuditEventType.MEETING_PROPOSED,
            meeting,
            {
                "round": request.round,
                "intent_id": str(recorded.intent.id),
                "slots": proposed,
                "rep_time_zone": meeting.rep_time_zone,
            },
        )
        return ProposalResult(outcome=StepOutcome.DONE, intent_id=recorded.intent.id)


def _hold(tenant_id: uuid.UUID, meeting_id: uuid.UUID, reason: str) -> ProposalResult:
    with tenant_unit_of_work(tenant_id) as uow:
        _end(uow, _lock(uow, meeting_id), MeetingStatus.HELD, reason)
    return ProposalResult(outcome=StepOutcome.HELD, reasons=[reason])


def record_choice(
    uow: TenantUnitOfWork,
    meeting: Meeting,
    index: int,
    source: str,
    *,
    actor: Actor = MEETINGS_ACTOR,
    inbound_id: uuid.UUID | None = None,
) -> bool:
    """Record the prospect's pick of a proposed slot, once: False when a choice is already
    recorded or the proposal is no longer open."""
    if meeting.status != MeetingStatus.PROPOSED.value or meeting.chosen_index is not None:
        return False
    if not 0 <= index < len(meeting.proposed_slots):
        raise MeetingChoiceClosed(f"Option {index + 1} was not proposed.")
    meeting.chosen_index = index
    meeting.chosen_slot = meeting.proposed_slots[index]
    meeting.choice_source = source
    meeting.choice_inbound_id = inbound_id
    uow.flush()
    _audit(
        uow,
        AuditEventType.MEETING_SLOT_CHOSEN,
        meeting,
        {"index": index, "slot": meeting.chosen_slot, "source": source},
        actor,
    )
    return True


def book(request: BookMeeting) -> BookingResult:
    """The chosen slot into the rep's calendar, with the invitation to the prospect."""
    with tenant_unit_of_work(request.tenant_id) as uow:
        meeting = _lock(uow, request.meeting_id)
        status = MeetingStatus(meeting.status)
        if status is MeetingStatus.BOOKED:
            return BookingResult(
                outcome=StepOutcome.DONE, calendar_event_uid=meeting.calendar_event_uid
            )
        if status in TERMINAL or meeting.proposal_round != request.round:
            return BookingResult(
                outcome=StepOutcome.HELD, reasons=[f"the meeting is {meeting.status}"]
            )
        if not 0 <= request.index < len(meeting.proposed_slots):
            return BookingResult(outcome=StepOutcome.TAKEN, reasons=["no such option"])
        slot = _slots(meeting)[request.index]
        pending = status is MeetingStatus.BOOKING
        mailbox = uow.get(Mailbox, meeting.mailbox_id)
        prospect = uow.get(Prospect, meeting.prospect_id)
        assert mailbox is not None
        assert prospect is not None
        calendar = calendar_for(request.tenant_id, MailboxRef.of(mailbox))
        sender = sender_profile(uow, mailbox)
        unsubscribe = sending.list_unsubscribe_url(uow.tenant_id, prospect.email)
        summary = f"{sender.company} / {prospect.first_name or prospect.email}"
        description = (
            f"The call we arranged by email ({meeting.duration_minutes} minutes)."
            + footer(sender, unsubscribe)
        )
        organizer, zone = mailbox.address, meeting.rep_time_zone
        attendee = Attendee(
            prospect.email,
            " ".join(p for p in (prospect.first_name, prospect.last_name) if p) or None,
        )
    # A booking that was marked but not confirmed (a crash, a retry) already passed the checks
    # below; the calendar would now count its own event as busy.
    if not pending:
        try:
            busy = calendar.free_busy(slot.start, slot.end)
        except CalendarError as exc:
            if exc.retryable:
                raise
            return _book_held(request, f"the calendar refused: {exc}")
        if busy:
            with tenant_unit_of_work(request.tenant_id) as uow:
                meeting = _lock(uow, request.meeting_id)
                _audit(
                    uow,
                    AuditEventType.MEETING_SLOT_CHOSEN,
                    meeting,
                    {"index": request.index, "taken": True, "slot": meeting.chosen_slot},
                )
            return BookingResult(outcome=StepOutcome.TAKEN, reasons=["the slot is taken"])
        with tenant_unit_of_work(request.tenant_id) as uow:
            meeting = _lock(uow, request.meeting_id)
            if meeting.status != MeetingStatus.PROPOSED.value:
                return BookingResult(
                    outcome=StepOutcome.HELD, reasons=[f"the meeting is {meeting.status}"]
                )
            prospect = uow.get(Prospect, meeting.prospect_id)
            mailbox = uow.get(Mailbox, meeting.mailbox_id)
            assert prospect is not None
            assert mailbox is not None
            outcome, reasons, retry_at = _gate(
                uow,
                meeting,
                prospect,
                mailbox,
                action_id=f"meeting:{meeting.id}:invite",
                subject=summary,
                body=description.split("\n\n--\n")[0],
            )
            if outcome is GateOutcome.CAP_REFUSED:
                return BookingResult(outcome=StepOutcome.WAIT, wait_until=retry_at, reasons=reasons)
            if outcome is not GateOutcome.ALLOWED:
                _end(uow, meeting, MeetingStatus.HELD, "; ".join(reasons))
                return BookingResult(outcome=StepOutcome.HELD, reasons=reasons)
            meeting.status = MeetingStatus.BOOKING.value
            meeting.chosen_index = request.index
            meeting.chosen_slot = meeting.proposed_slots[request.index]
            meeting.calendar_event_uid = event_uid(meeting.id)
    try:
        event = calendar.create_event(
            EventRequest(
                uid=event_uid(request.meeting_id),
                organizer=organizer,
                attendees=(attendee,),
                summary=summary,
                start=slot.start,
                end=slot.end,
                time_zone=zone,
                description=description,
            )
        )
    except CalendarError as exc:
        if exc.retryable:
            raise
        return _book_held(request, f"the calendar refused the event: {exc}")
    with tenant_unit_of_work(request.tenant_id) as uow:
        meeting = _lock(uow, request.meeting_id)
        if meeting.status == MeetingStatus.BOOKING.value:
            meeting.status = MeetingStatus.BOOKED.value
            meeting.calendar_event_uid = event.uid
            meeting.booked_at = _utc_now()
            uow.flush()
            _audit(
                uow,
                AuditEventType.MEETING_BOOKED,
                meeting,
                {
                    "calendar_event_uid": event.uid,
                    "provider_event_id": event.provider_event_id,
                    "slot": meeting.chosen_slot,
                    "choice_source": meeting.choice_source,
                    "attendees": [attendee.email],
                },
            )
    return BookingResult(outcome=StepOutcome.DONE, calendar_event_uid=event.uid)


def _book_held(request: BookMeeting, reason: str) -> BookingResult:
    with tenant_unit_of_work(request.tenant_id) as uow:
        _end(uow, _lock(uow, request.meeting_id), MeetingStatus.HELD, reason)
    return BookingResult(outcome=StepOutcome.HELD, reasons=[reason])


def event_uid(meeting_id: uuid.UUID) -> str:
    return f"meeting-{meeting_id}@asep"


def finish_booking(tenant_id: uuid.UUID, meeting_id: uuid.UUID) -> MeetingRead:
    """The booked meeting to deals (MEETING_BOOKED, or a new deal) and to the CRM."""
    with tenant_unit_of_work(tenant_id) as uow:
        meeting = _lock(uow, meeting_id)
        if meeting.status != MeetingStatus.BOOKED.value or meeting.calendar_event_uid is None:
            raise MeetingChoiceClosed(f"Meeting {meeting_id} is {meeting.status}, not booked.")
        prospect = uow.get(Prospect, meeting.prospect_id)
        mailbox = uow.get(Mailbox, meeting.mailbox_id)
        assert prospect is not None
        assert mailbox is not None
        deal = deal_for_meeting(
            uow,
            MeetingDeal(
                prospect_id=meeting.prospect_id,
                meeting_key=meeting.calendar_event_uid,
                campaign_id=meeting.campaign_id,
                correlation_id=meeting.correlation_id,
            ),
        )
        meeting.deal_id = deal.id
        slot = _slots(meeting)[meeting.chosen_index or 0]
        crm = crm_for(uow)
        contact = crm.upsert_contact(
            ContactUpsert(
                email=prospect.email,
                first_name=prospect.first_name,
                last_name=prospect.last_name,
                title=prospect.title,
                company_domain=prospect.email.rsplit("@", 1)[1],
            ),
            idempotency_key=f"contact:{prospect.id}",
        )
        crm.log_meeting(
            MeetingLog(
                contact_external_id=contact.external_id,
                title=f"Meeting with {prospect.first_name or prospect.email}",
                start_at=slot.start,
                end_at=slot.end,
                attendees=(prospect.email, mailbox.address),
                deal_external_id=deal.crm_external_id,
            ),
            idempotency_key=f"meeting:{meeting.id}",
        )
        audit_crm_writes(uow, crm, MEETINGS_ACTOR, correlation_id=meeting.correlation_id)
        uow.flush()
        return _read(meeting)


def end_meeting(request: EndMeeting) -> MeetingRead:
    with tenant_unit_of_work(request.tenant_id) as uow:
        meeting = _lock(uow, request.meeting_id)
        _end(uow, meeting, request.status, request.reason)
        return _read(meeting)


def expire(tenant_id: uuid.UUID, meeting_id: uuid.UUID) -> SlotChoice:
    """At the proposal's timeout: a choice recorded whose event never arrived still books;
    otherwise the meeting expires."""
    with tenant_unit_of_work(tenant_id) as uow:
        meeting = _lock(uow, meeting_id)
        if meeting.status == MeetingStatus.PROPOSED.value and meeting.chosen_index is not None:
            return SlotChoice(
                index=meeting.chosen_index,
                source=meeting.choice_source,
                round=meeting.proposal_round,
            )
        _end(uow, meeting, MeetingStatus.EXPIRED, "no choice before the proposal timed out")
        return SlotChoice()


def route_reply(route: MeetingReplyRoute) -> tuple[RoutedReply, str | None]:
    """A reply while the prospect has an open proposal: its pick of a slot (or its decline)
    goes to that meeting. Returns the routing and the meeting's orchestration instance."""
    with tenant_unit_of_work(route.tenant_id) as uow:
        inbound = uow.get(InboundMail, route.inbound_id)
        if inbound is None or inbound.prospect_id is None:
            return RoutedReply(routed=False), None
        meeting = repository.awaiting_choice(uow, inbound.prospect_id, route.inbound_id)
        if meeting is None:
            return RoutedReply(routed=False), None
        if route.label in DECLINING_LABELS:
            choice = SlotChoice(
                declined=f"the prospect replied ({route.label})",
                source="reply",
                round=meeting.proposal_round,
            )
            return (
                RoutedReply(routed=True, meeting_id=meeting.id, choice=choice),
                meeting.orchestration_instance_id,
            )
        if route.label not in CHOOSING_LABELS:
            return RoutedReply(routed=False, meeting_id=meeting.id), None
        text = new_text(message_text(inbound.raw or b"").body)
        index = parse_choice(text, _slots(meeting), meeting.time_zone)
        if index is None:
            return RoutedReply(routed=False, meeting_id=meeting.id), None
        meeting = _lock(uow, meeting.id)
        if not record_choice(uow, meeting, index, "reply", inbound_id=route.inbound_id):
            return RoutedReply(routed=True, meeting_id=meeting.id), None
        choice = SlotChoice(index=index, source="reply", round=meeting.proposal_round)
        return (
            RoutedReply(routed=True, meeting_id=meeting.id, choice=choice),
            meeting.orchestration_instance_id,
        )


def get_meeting(uow: TenantUnitOfWork, meeting_id: uuid.UUID) -> MeetingRead:
    meeting = uow.get(Meeting, meeting_id)
    if meeting is None:
        raise MeetingNotFound(f"Meeting {meeting_id} does not exist.")
    return _read(meeting)


def list_meetings(
    uow: TenantUnitOfWork,
    *,
    cursor: str | None = None,
    limit: int = 100,
    status: MeetingStatus | None = None,
    prospect_id: uuid.UUID | None = None,
    campaign_id: uuid.UUID | None = None,
) -> MeetingPage:
    rows = repository.page(
        uow,
        after=decode_time_cursor(cursor) if cursor else None,
        limit=limit + 1,
        status=status,
        prospect_id=prospect_id,
        campaign_id=campaign_id,
    )
    items = [_read(row) for row in rows[:limit]]
    more = len(rows) > limit
    next_cursor = encode_time_cursor(items[-1].created_at, items[-1].id) if more else None
    return MeetingPage(items=items, next_cursor=next_cursor)


class MeetingLinkInvalid(NotFound):
    code = "meeting_link_invalid"
    title = "This booking link is not valid"


def _claim(token: str, now: datetime) -> BookingClaim:
    try:
        return booking_signer().verify(token, now)
    except InvalidBookingToken as exc:
        raise MeetingLinkInvalid(f"The booking link is not valid: {exc}.") from exc


def _open_for_link(uow: TenantUnitOfWork, claim: BookingClaim, *, lock: bool) -> Meeting:
    meeting = _lock(uow, claim.meeting_id) if lock else uow.get(Meeting, claim.meeting_id)
    if meeting is None:
        raise MeetingLinkInvalid("The booking link is not valid: no such meeting.")
    if (
        meeting.proposal_round != claim.round
        or meeting.status != MeetingStatus.PROPOSED.value
        or meeting.chosen_index is not None
    ):
        raise MeetingChoiceClosed(
            "This proposal no longer takes a choice: a time was already picked, the proposal "
            "was replaced, or the meeting was closed."
        )
    return meeting


def proposal_by_link(token: str, now: datetime | None = None) -> MeetingRead:
    """The open proposal a booking link names (for the page that lists its options)."""
    claim = _claim(token, now or _utc_now())
    with tenant_unit_of_work(claim.tenant_id) as uow:
        return _read(_open_for_link(uow, claim, lock=False))


LINK_ACTOR = Actor(type=ActorType.SYSTEM, id="meeting-link", display="Prospect")


def choose_by_link(
    token: str, option: int, now: datetime | None = None
) -> tuple[MeetingRead, SlotChoice]:
    """The prospect's pick through the link (1-based option), recorded once."""
    claim = _claim(token, now or _utc_now())
    with tenant_unit_of_work(claim.tenant_id) as uow:
        meeting = _open_for_link(uow, claim, lock=True)
        record_choice(uow, meeting, option - 1, "link", actor=LINK_ACTOR)
        choice = SlotChoice(index=option - 1, source="link", round=meeting.proposal_round)
        return _read(meeting), choice

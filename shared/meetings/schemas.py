"""Pydantic I/O for meetings: the API's reads, tenant settings, and the meeting_booking
orchestration's input and activity inputs/outputs."""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.meetings.model import WEEKDAYS, SlotRules, WorkingHours


class MeetingStatus(StrEnum):
    PROPOSING = "proposing"
    PROPOSED = "proposed"
    BOOKING = "booking"
    BOOKED = "booked"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    HELD = "held"


OPEN_STATUSES = frozenset({MeetingStatus.PROPOSING, MeetingStatus.PROPOSED, MeetingStatus.BOOKING})


class MeetingHours(BaseModel):
    """Tenant setting `meeting_hours` (and per mailbox in `meeting_hours_by_mailbox`): when
    the rep takes meetings, in the rep's zone (the mailbox's time zone unless set here)."""

    model_config = ConfigDict(extra="forbid")

    start: time = time(9, 0)
    end: time = time(17, 0)
    days: list[str] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1)
    time_zone: str | None = None
    duration_minutes: int = Field(default=30, ge=10, le=240)
    lead_minutes: int = Field(default=120, ge=0, le=14 * 24 * 60)
    horizon_days: int = Field(default=14, ge=1, le=60)

    @field_validator("days")
    @classmethod
    def _known_days(cls, days: list[str]) -> list[str]:
        unknown = [d for d in days if d not in WEEKDAYS]
        if unknown:
            raise ValueError(f"unknown days {unknown}; use {list(WEEKDAYS)}")
        return days

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        if zone is not None:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {zone!r}") from exc
        return zone

    def working_hours(self, rep_zone: str) -> WorkingHours:
        return WorkingHours(
            time_zone=self.time_zone or rep_zone,
            start=self.start,
            end=self.end,
            days=frozenset(WEEKDAYS.index(d) for d in self.days),
        )

    def rules(self) -> SlotRules:
        return SlotRules(
            duration=timedelta(minutes=self.duration_minutes),
            lead_time=timedelta(minutes=self.lead_minutes),
            horizon_days=self.horizon_days,
        )


class ProposedSlot(BaseModel):
    start: datetime = Field(description="UTC")
    end: datetime
    local_start: datetime = Field(description="The start in the prospect's time zone")
    label: str = Field(description="How the proposal email wrote it")


class MeetingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    prospect_id: uuid.UUID
    campaign_id: uuid.UUID | None
    inbound_id: uuid.UUID = Field(description="The reply that asked for the meeting")
    mailbox_id: uuid.UUID
    deal_id: uuid.UUID | None
    status: MeetingStatus
    status_reason: str | None
    time_zone: str = Field(description="The prospect's time zone")
    rep_time_zone: str
    duration_minutes: int
    proposed_slots: list[ProposedSlot]
    proposal_round: int
    chosen_slot: ProposedSlot | None
    choice_source: str | None
    calendar_event_uid: str | None
    correlation_id: str | None
    orchestration_instance_id: str
    proposed_at: datetime | None
    booked_at: datetime | None
    created_at: datetime
    updated_at: datetime


class MeetingPage(BaseModel):
    items: list[MeetingRead]
    next_cursor: str | None


# meeting_booking: the orchestration's input and its activities' inputs and outputs.


class MeetingBookingInput(BaseModel):
    tenant_id: uuid.UUID
    inbound_id: uuid.UUID
    correlation_id: str | None = None
    choice_timeout_seconds: int = Field(ge=1)
    max_proposals: int = Field(default=3, ge=1, le=10)

    @property
    def instance_id(self) -> str:
        return meeting_instance_id(self.inbound_id)


def meeting_instance_id(inbound_id: uuid.UUID) -> str:
    """One meeting_booking per reply that asked for one: starting it again finds the same."""
    return f"meeting:{inbound_id}"


class MeetingOpened(BaseModel):
    meeting_id: uuid.UUID | None = None
    status: MeetingStatus | None = None
    reason: str | None = None


class MeetingRef(BaseModel):
    tenant_id: uuid.UUID
    meeting_id: uuid.UUID


class ProposeMeeting(BaseModel):
    tenant_id: uuid.UUID
    meeting_id: uuid.UUID
    round: int = Field(ge=1)
    choice_timeout_seconds: int = Field(ge=1)


class StepOutcome(StrEnum):
    DONE = "done"  # proposal recorded / event booked
    WAIT = "wait"  # a cap or the calendar: try again at wait_until
    TAKEN = "taken"  # the chosen slot is no longer free: propose again
    HELD = "held"  # policy or the calendar refused: the meeting is held


class ProposalResult(BaseModel):
    outcome: StepOutcome
    intent_id: uuid.UUID | None = None
    wait_until: datetime | None = None
    reasons: list[str] = Field(default_factory=list)


class SlotChoice(BaseModel):
    """The `slot_chosen` event's data, and what a timeout found recorded."""

    index: int | None = Field(default=None, ge=0)
    declined: str | None = None
    source: str | None = None
    # The proposal it answers: a choice of an earlier proposal is not one of this one.
    round: int | None = None


class BookMeeting(BaseModel):
    tenant_id: uuid.UUID
    meeting_id: uuid.UUID
    round: int = Field(ge=1)
    index: int = Field(ge=0)


class BookingResult(BaseModel):
    outcome: StepOutcome
    calendar_event_uid: str | None = None
    wait_until: datetime | None = None
    reasons: list[str] = Field(default_factory=list)


class EndMeeting(BaseModel):
    tenant_id: uuid.UUID
    meeting_id: uuid.UUID
    status: MeetingStatus
    reason: str


class MeetingReplyRoute(BaseModel):
    """A reply while a proposal is open: routed to that meeting as its choice (or decline)."""

    tenant_id: uuid.UUID
    inbound_id: uuid.UUID
    label: str


class RoutedReply(BaseModel):
    routed: bool
    meeting_id: uuid.UUID | None = None
    choice: SlotChoice | None = None


class StartMeeting(BaseModel):
    """reply_to_deal's ask, once the reply's deal is written: offer the prospect a meeting."""

    tenant_id: uuid.UUID
    inbound_id: uuid.UUID
    correlation_id: str | None = None

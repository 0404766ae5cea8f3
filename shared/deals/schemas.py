"""Pydantic I/O for deals: the gate's answer, the shadow record, and the reply_to_deal
orchestration's activity inputs."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.crm.port import DealStageIntent

# The stage names are the CRM port's intents: each tenant maps them to its own pipeline.
DealStage = DealStageIntent


class DealStatus(StrEnum):
    CREATED = "created"
    PENDING_APPROVAL = "pending_approval"
    HELD = "held"
    BLOCKED = "blocked"


class GateOutcome(StrEnum):
    AUTO = "auto"  # create the deal now
    APPROVAL = "approval"  # ask a person "Create Deal?" first
    UPDATE = "update"  # a deal for this contact/company exists in the window: update it
    NONE = "none"  # no deal; recorded as blocked


class DealGateResult(BaseModel):
    """What deal gating decided for one reply, with the policy decision behind it."""

    reply_id: uuid.UUID
    outcome: GateOutcome
    label: str
    confidence: float
    touch_number: int
    prospect_id: uuid.UUID | None = None
    campaign_id: uuid.UUID | None = None
    company_domain: str | None = None
    existing_deal_id: uuid.UUID | None = None
    correlation_id: str | None = None
    decision_id: str = ""
    pack_id: str = ""
    pack_version: int = 0
    input_hash: str = ""
    matched_rules: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)

    def trace(self) -> dict[str, Any]:
        """The decision trace DEAL_* audit events and approvals carry."""
        return {
            "decision_id": self.decision_id,
            "pack": {"id": self.pack_id, "version": self.pack_version},
            "input_hash": self.input_hash,
            "matched_rules": self.matched_rules,
            "reasons": self.reasons,
            "outcome": self.outcome.value,
        }


class DealRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    prospect_id: uuid.UUID | None
    company_id: uuid.UUID | None
    company_domain: str | None
    campaign_id: uuid.UUID | None
    stage: DealStage
    source: str
    status: DealStatus
    reason: str | None
    crm_provider: str | None
    crm_external_id: str | None
    confidence: float
    source_reply_id: uuid.UUID | None
    last_reply_id: uuid.UUID | None
    approval_id: uuid.UUID | None
    decision_id: str | None
    correlation_id: str | None
    created_at: datetime
    updated_at: datetime


class DealPage(BaseModel):
    items: list[DealRead]
    next_cursor: str | None


# reply_to_deal: the orchestration's input and its activities' inputs.


class ReplyToDealInput(BaseModel):
    tenant_id: uuid.UUID
    inbound_id: uuid.UUID
    approval_timeout_seconds: int = Field(ge=1)
    correlation_id: str | None = None

    @property
    def instance_id(self) -> str:
        return deal_instance_id(self.inbound_id)


class InboundRef(BaseModel):
    tenant_id: uuid.UUID
    inbound_id: uuid.UUID


class ReplyRef(BaseModel):
    tenant_id: uuid.UUID
    reply_id: uuid.UUID


class ClassifiedReply(BaseModel):
    reply_id: uuid.UUID
    label: str
    positive: bool


class DealApprovalAsk(BaseModel):
    tenant_id: uuid.UUID
    gate: DealGateResult
    orchestration_instance_id: str


class DealWrite(BaseModel):
    tenant_id: uuid.UUID
    gate: DealGateResult
    approval_id: uuid.UUID | None = None


class DealHold(BaseModel):
    tenant_id: uuid.UUID
    gate: DealGateResult
    reason: str


def deal_instance_id(inbound_id: uuid.UUID) -> str:
    """One reply_to_deal per inbound message: starting it again finds the same instance."""
    return f"deal:{inbound_id}"


class MeetingDeal(BaseModel):
    """A booked meeting, as the meeting_booking flow reports it to deals."""

    prospect_id: uuid.UUID
    meeting_key: str = Field(min_length=1, max_length=200)  # the calendar event's id
    campaign_id: uuid.UUID | None = None
    correlation_id: str | None = Field(default=None, max_length=200)

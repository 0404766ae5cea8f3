"""Pydantic I/O for mail: send intents and their outcomes, inbound results, the sandbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SendStatus(StrEnum):
    PENDING = "pending"  # recorded, may be delivered (now or after next_attempt_at)
    DRAFT = "draft"  # draft-only mode: recorded, never delivered
    SENDING = "sending"  # a deliver call holds it; a crash leaves it here until the lease ends
    UNKNOWN = "unknown"  # the provider may have it: reconcile before anything else
    SENT = "sent"
    HELD = "held"  # will not be sent; status_reason says why


class NextAction(StrEnum):
    """What the orchestration does next with an intent."""

    NONE = "none"  # final: sent, held or draft
    DELIVER = "deliver"  # call deliver (after retry_after_seconds, when set)
    RECONCILE = "reconcile"  # call reconcile (after retry_after_seconds, when set)


class SendIntentCreate(BaseModel):
    """One touch to send. The idempotency key names the touch, e.g.
    `{campaign_id}:{prospect_id}:{step_id}`: recording it twice yields one intent."""

    model_config = ConfigDict(extra="forbid")

    idempotency_key: str = Field(min_length=1, max_length=255)
    mailbox_id: uuid.UUID
    recipient: str = Field(min_length=3, max_length=320)
    recipient_name: str | None = Field(default=None, max_length=200)
    sender_name: str | None = Field(default=None, max_length=200)
    subject: str = Field(min_length=1, max_length=900)
    text: str = Field(min_length=1, max_length=200_000)
    html: str | None = Field(default=None, max_length=500_000)
    campaign_id: uuid.UUID | None = None
    prospect_id: uuid.UUID | None = None
    step_id: str | None = Field(default=None, max_length=64)
    # A follow-up: the earlier touch it continues (In-Reply-To / References).
    reply_to_intent_id: uuid.UUID | None = None
    # An answer to the prospect's own message (a meeting proposal answers their reply).
    reply_to_inbound_id: uuid.UUID | None = None
    correlation_id: str | None = Field(default=None, max_length=200)


class SendIntentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    idempotency_key: str
    mailbox_id: uuid.UUID
    campaign_id: uuid.UUID | None
    prospect_id: uuid.UUID | None
    step_id: str | None
    recipient: str
    subject: str
    message_id: str
    in_reply_to: str | None
    status: SendStatus
    status_reason: str | None
    attempts: int
    sent_at: datetime | None
    correlation_id: str | None
    created_at: datetime


class RecordedIntent(BaseModel):
    intent: SendIntentRead
    created: bool = Field(description="False when the idempotency key was already recorded.")


class DeliveryOutcome(BaseModel):
    """The state an intent is in after deliver or reconcile, and what to do next."""

    intent_id: uuid.UUID
    message_id: str
    status: SendStatus
    next_action: NextAction
    retry_after_seconds: float | None = None
    reason: str | None = None


class FaultPlan(BaseModel):
    """Injected provider faults for a sandbox mailbox, as probabilities per call."""

    model_config = ConfigDict(extra="forbid")

    throttle_rate: float = Field(default=0.0, ge=0, le=1)
    unavailable_rate: float = Field(default=0.0, ge=0, le=1)
    timeout_rate: float = Field(default=0.0, ge=0, le=1)
    # The message is stored, but the caller hears OutcomeUnknown.
    unknown_rate: float = Field(default=0.0, ge=0, le=1)
    retry_after_seconds: float = Field(default=1.0, ge=0, le=3600)
    seed: int | None = None

    @model_validator(mode="after")
    def _rates_sum(self) -> FaultPlan:
        total = self.throttle_rate + self.unavailable_rate + self.timeout_rate + self.unknown_rate
        if total > 1:
            raise ValueError("fault rates add up to more than 1")
        return self


class SandboxMessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    seq: int
    direction: str
    message_id: str | None
    sender: str | None
    recipients: list[str]
    subject: str | None
    size_bytes: int
    created_at: datetime
    raw: str | None = Field(default=None, description="The RFC 5322 text, when asked for.")


class SandboxMessagePage(BaseModel):
    items: list[SandboxMessageRead]
    next_cursor: int | None


class InboundRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    mailbox_id: uuid.UUID
    message_id: str | None
    sender: str | None
    subject: str | None
    intent_id: uuid.UUID | None
    campaign_id: uuid.UUID | None
    prospect_id: uuid.UUID | None
    content_type: str
    size_bytes: int
    problems: list[str]
    reason: str | None
    received_at: datetime


class IngestResult(BaseModel):
    inbound: InboundRead
    created: bool = Field(description="False when this message was already stored.")

"""What the campaign orchestrations and their activities exchange (JSON-serializable)."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JourneyInput(_Message):
    """One prospect's journey through one campaign's sequence (`prospect_sequence`)."""

    tenant_id: uuid.UUID
    campaign_id: uuid.UUID
    sequence_id: uuid.UUID
    prospect_id: uuid.UUID
    mailbox_id: uuid.UUID
    correlation_id: str
    canary: bool = False
    approval_timeout_seconds: int = Field(default=7 * 24 * 3600, ge=1)

    @property
    def instance_id(self) -> str:
        return journey_instance_id(self.campaign_id, self.prospect_id)


def journey_instance_id(campaign_id: uuid.UUID, prospect_id: uuid.UUID) -> str:
    # Deterministic: enrolling the same prospect twice finds the running instance.
    return f"{campaign_id}:{prospect_id}"


def campaign_instance_id(campaign_id: uuid.UUID) -> str:
    return f"campaign:{campaign_id}"


class SequencePlan(_Message):
    steps: list[dict[str, Any]]
    first_step_id: str


class TouchOutcome(StrEnum):
    READY = "ready"
    APPROVAL_REQUIRED = "approval_required"
    DENIED = "denied"


class PrepareTouch(_Message):
    journey: JourneyInput
    step_id: str
    touch_number: int = Field(ge=1)


class TouchPrepared(_Message):
    outcome: TouchOutcome
    draft_id: uuid.UUID
    approval_id: uuid.UUID | None = None
    reasons: list[str] = Field(default_factory=list)


class SendOutcome(StrEnum):
    RECORDED = "recorded"
    WAIT = "wait"
    DENIED = "denied"


class SendTouch(_Message):
    journey: JourneyInput
    step_id: str
    touch_number: int = Field(ge=1)
    draft_id: uuid.UUID
    approval_id: uuid.UUID | None = None
    previous_intent_id: uuid.UUID | None = None


class TouchSendResult(_Message):
    outcome: SendOutcome
    intent_id: uuid.UUID | None = None
    wait_until: str | None = Field(default=None, description="ISO 8601, when outcome is wait")
    reasons: list[str] = Field(default_factory=list)


class IntentRef(_Message):
    tenant_id: uuid.UUID
    intent_id: uuid.UUID


class SequenceRef(_Message):
    tenant_id: uuid.UUID
    sequence_id: uuid.UUID


class CampaignRef(_Message):
    tenant_id: uuid.UUID
    campaign_id: uuid.UUID


class LogTouch(_Message):
    journey: JourneyInput
    intent_id: uuid.UUID
    step_id: str


class JourneyStatus(StrEnum):
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    HELD = "held"
    REPLIED = "replied"
    STOPPED = "stopped"
    COMPLETED = "completed"


class JourneyUpdate(_Message):
    tenant_id: uuid.UUID
    campaign_id: uuid.UUID
    prospect_id: uuid.UUID
    status: JourneyStatus
    reason: str | None = None
    step_id: str | None = None
    correlation_id: str | None = None


class EngagementQuery(_Message):
    tenant_id: uuid.UUID
    campaign_id: uuid.UUID
    prospect_id: uuid.UUID


class Engagement(_Message):
    replied: bool
    bounced: bool


class CampaignRunInput(_Message):
    tenant_id: uuid.UUID
    campaign_id: uuid.UUID
    sequence_id: uuid.UUID
    batch_size: int = Field(default=50, ge=1, le=1000)
    pace_seconds: int = Field(default=1, ge=0)
    after_position: int = 0
    canary_done: bool = False
    canary_observation_seconds: int = Field(default=3600, ge=1)
    enrolled: int = 0


class EnrolBatch(_Message):
    tenant_id: uuid.UUID
    campaign_id: uuid.UUID
    sequence_id: uuid.UUID
    after_position: int
    limit: int
    canary: bool = False


class EnrolResult(_Message):
    enrolled: int
    last_position: int
    done: bool
    # Set while the campaign is paused: how long campaign_run waits before it asks again.
    wait_seconds: int | None = None


class CanaryInput(_Message):
    tenant_id: uuid.UUID
    campaign_id: uuid.UUID
    sequence_id: uuid.UUID
    observation_seconds: int = Field(default=3600, ge=1)


class CanaryVerdict(_Message):
    escalate: bool
    sent: int
    bounces: int
    complaints: int
    negative_replies: int
    reasons: list[str] = Field(default_factory=list)


class CanaryOutcome(_Message):
    tenant_id: uuid.UUID
    campaign_id: uuid.UUID
    verdict: CanaryVerdict

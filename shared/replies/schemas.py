"""Pydantic I/O for reply intelligence: labels, classifications, intent events, relabels."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ReplyLabel(StrEnum):
    POSITIVE = "positive"
    NEUTRAL = "neutral"
    OBJECTION = "objection"
    UNSUBSCRIBE = "unsubscribe"
    OOO = "ooo"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"


class ReplyStatus(StrEnum):
    CLASSIFIED = "classified"
    # Nothing trustworthy to classify (no body, a loop of auto-replies): `reason` says why.
    UNCLASSIFIABLE = "unclassifiable"


class Evidence(BaseModel):
    """What a classification rests on: the excerpt of new text read and the signals that fired
    (header values, DSN status codes, detector and model names)."""

    model_config = ConfigDict(extra="forbid")

    excerpt: str = Field(default="", max_length=500)
    signals: list[str] = Field(default_factory=list)
    source: str = Field(description="The detector or model that decided.")
    addresses: list[str] = Field(
        default_factory=list, description="Addresses a bounce or complaint report names."
    )
    status_codes: list[str] = Field(default_factory=list)


class ReplyClassification(BaseModel):
    """The result for one message. `confidence` estimates P(label is right)."""

    label: ReplyLabel
    sub_label: str | None = None
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: Evidence
    status: ReplyStatus = ReplyStatus.CLASSIFIED
    reason: str | None = None
    classifier_version: str
    reduced_text: str = ""
    recommendation: str = ""


class ReplyModelOutput(BaseModel):
    """The output schema of Task.CLASSIFY_REPLY (offline model or a hosted one)."""

    model_config = ConfigDict(extra="forbid")

    label: ReplyLabel
    sub_label: str | None = Field(default=None, max_length=64)
    confidence: float = Field(ge=0.0, le=1.0)
    rationale: str = Field(default="", max_length=1000)


class ReplyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    inbound_id: uuid.UUID
    intent_id: uuid.UUID | None
    prospect_id: uuid.UUID | None
    campaign_id: uuid.UUID | None
    status: ReplyStatus
    label: ReplyLabel
    sub_label: str | None
    confidence: float
    evidence: dict[str, Any]
    reason: str | None
    recommendation: str
    classifier_version: str
    reduced_text_sha256: str
    human_label: ReplyLabel | None
    human_sub_label: str | None
    labelled_by: str | None
    labelled_at: datetime | None
    created_at: datetime


class ReplyPage(BaseModel):
    items: list[ReplyRead]
    next_cursor: str | None


class IntentEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    reply_id: uuid.UUID
    prospect_id: uuid.UUID | None
    campaign_id: uuid.UUID | None
    confidence: float
    sub_label: str | None
    evidence: dict[str, Any]
    created_at: datetime


class IntentEventPage(BaseModel):
    items: list[IntentEventRead]
    next_cursor: str | None


class ReplyLabelRequest(BaseModel):
    """A person's label for a reply: kept as training data and audited. Unsubscribe, complaint
    or hard bounce suppresses at once; no other effect (intent event, deal, health) re-runs."""

    model_config = ConfigDict(extra="forbid")

    label: ReplyLabel
    sub_label: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=2000)


class ClassifiedInbound(BaseModel):
    """What `classify_inbound` did: the stored reply and the effects it caused."""

    reply: ReplyRead
    created: bool
    intent_event_id: uuid.UUID | None = None
    suppressed: list[str] = Field(default_factory=list, description="SHA-256 of each address.")
    health_updated: bool = False

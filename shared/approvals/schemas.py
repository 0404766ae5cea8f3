"""Pydantic I/O for approvals."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ApprovalMode = Literal["once", "every_time"]


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ApprovalRequest(BaseModel):
    """What an orchestration asks a human to decide, with what the human needs to see.

    `action_kind` + `action_id` identify the action (a draft's send, a deal); asking twice
    for the same action returns the first request.
    """

    model_config = ConfigDict(extra="forbid")

    action_kind: str = Field(min_length=1, max_length=32)
    action_id: str = Field(min_length=1, max_length=200)
    campaign_id: uuid.UUID | None = None
    sequence_step: int | None = Field(default=None, ge=0)
    template_hash: str | None = Field(default=None, max_length=128)
    prospect_id: uuid.UUID | None = None
    orchestration_instance_id: str | None = Field(default=None, max_length=200)
    mode: ApprovalMode = "every_time"
    summary: str = Field(default="", max_length=2000)
    preview: dict[str, Any] = Field(default_factory=dict)
    evidence: list[dict[str, Any]] = Field(default_factory=list)
    decision_trace: dict[str, Any] = Field(
        default_factory=dict, description="The policy decision that asked for approval."
    )
    ttl_seconds: int | None = Field(default=None, ge=60, le=30 * 24 * 3600)


class ApprovalRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    action_kind: str
    action_id: str
    campaign_id: uuid.UUID | None
    sequence_step: int | None
    template_hash: str | None
    prospect_id: uuid.UUID | None
    orchestration_instance_id: str | None
    mode: ApprovalMode
    status: ApprovalStatus
    requested_by: dict[str, Any]
    decided_by: dict[str, Any] | None
    reason: str | None
    summary: str
    preview: dict[str, Any]
    evidence: list[dict[str, Any]]
    decision_trace: dict[str, Any]
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None


class ApprovalSummary(BaseModel):
    """A list entry: enough to triage, without the evidence and trace."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    action_kind: str
    action_id: str
    campaign_id: uuid.UUID | None
    sequence_step: int | None
    prospect_id: uuid.UUID | None
    mode: ApprovalMode
    status: ApprovalStatus
    summary: str
    requested_by: dict[str, Any]
    decided_by: dict[str, Any] | None
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None


class ApprovalPage(BaseModel):
    items: list[ApprovalSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)
    mode: ApprovalMode | None = Field(
        default=None,
        description="'once' also approves this step's template for later drafts; "
        "defaults to the mode the request was made with.",
    )


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class ApprovalOutcome(BaseModel):
    """What the waiting orchestration receives as its external event."""

    model_config = ConfigDict(frozen=True)

    approval_id: uuid.UUID
    action_kind: str
    action_id: str
    status: ApprovalStatus
    reason: str | None
    decided_by: dict[str, Any] | None
    decided_at: datetime

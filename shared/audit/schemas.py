"""Pydantic I/O for the audit log, and the closed set of event types."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AuditEventType(StrEnum):
    # Seed §11 core events.
    PROSPECT_SELECTED = "PROSPECT_SELECTED"
    RESEARCH_COMPLETED = "RESEARCH_COMPLETED"
    DRAFT_CREATED = "DRAFT_CREATED"
    POLICY_EVALUATED = "POLICY_EVALUATED"
    APPROVAL_REQUESTED = "APPROVAL_REQUESTED"
    APPROVAL_GRANTED = "APPROVAL_GRANTED"
    APPROVAL_REJECTED = "APPROVAL_REJECTED"
    SEND_ATTEMPTED = "SEND_ATTEMPTED"
    SEND_SUCCEEDED = "SEND_SUCCEEDED"
    SEND_FAILED = "SEND_FAILED"
    CRM_LOGGED = "CRM_LOGGED"
    REPLY_RECEIVED = "REPLY_RECEIVED"
    INTENT_EVENT_CREATED = "INTENT_EVENT_CREATED"
    DEAL_CREATED = "DEAL_CREATED"
    DEAL_UPDATED = "DEAL_UPDATED"
    DEAL_CREATION_BLOCKED = "DEAL_CREATION_BLOCKED"
    MEETING_BOOKED = "MEETING_BOOKED"
    KILL_SWITCH_ACTIVATED = "KILL_SWITCH_ACTIVATED"
    # Authentication and administration.
    AUTH_REFUSED = "AUTH_REFUSED"
    TENANT_CREATED = "TENANT_CREATED"
    TENANT_UPDATED = "TENANT_UPDATED"
    TENANT_SUSPENDED = "TENANT_SUSPENDED"
    SSO_CONNECTION_CREATED = "SSO_CONNECTION_CREATED"
    SSO_CONNECTION_UPDATED = "SSO_CONNECTION_UPDATED"
    SSO_CONNECTION_DELETED = "SSO_CONNECTION_DELETED"
    USER_CREATED = "USER_CREATED"
    USER_ROLE_CHANGED = "USER_ROLE_CHANGED"
    USER_DISABLED = "USER_DISABLED"
    API_KEY_CREATED = "API_KEY_CREATED"
    API_KEY_REVOKED = "API_KEY_REVOKED"
    POLICY_CREATED = "POLICY_CREATED"
    POLICY_UPDATED = "POLICY_UPDATED"
    POLICY_PUBLISHED = "POLICY_PUBLISHED"
    POLICY_DELETED = "POLICY_DELETED"
    KILL_SWITCH_RELEASED = "KILL_SWITCH_RELEASED"
    AUDIT_EXPORTED = "AUDIT_EXPORTED"
    PROSPECTS_IMPORTED = "PROSPECTS_IMPORTED"
    PROSPECT_UPDATED = "PROSPECT_UPDATED"
    CAMPAIGN_CREATED = "CAMPAIGN_CREATED"
    SEQUENCE_CREATED = "SEQUENCE_CREATED"
    CAMPAIGN_STARTED = "CAMPAIGN_STARTED"
    CAMPAIGN_STOPPED = "CAMPAIGN_STOPPED"
    CAMPAIGN_PAUSED = "CAMPAIGN_PAUSED"
    CAMPAIGN_RESUMED = "CAMPAIGN_RESUMED"
    CAMPAIGN_MEMBERS_ADDED = "CAMPAIGN_MEMBERS_ADDED"
    CANARY_ESCALATED = "CANARY_ESCALATED"
    CANARY_PAUSED = "CANARY_PAUSED"
    JOURNEY_ENDED = "JOURNEY_ENDED"
    # Deliverability and approvals.
    MAILBOX_CREATED = "MAILBOX_CREATED"
    SUPPRESSION_ADDED = "SUPPRESSION_ADDED"
    SUPPRESSION_REMOVED = "SUPPRESSION_REMOVED"
    SUPPRESSIONS_IMPORTED = "SUPPRESSIONS_IMPORTED"
    UNSUBSCRIBED = "UNSUBSCRIBED"
    SEND_CAP_REFUSED = "SEND_CAP_REFUSED"
    APPROVAL_EXPIRED = "APPROVAL_EXPIRED"
    # Mail: effectively-once send and inbound.
    SEND_DRAFTED = "SEND_DRAFTED"
    SEND_RECONCILED = "SEND_RECONCILED"
    INBOUND_STORED = "INBOUND_STORED"
    # Replies: classification of inbound mail and people's corrections.
    REPLY_CLASSIFIED = "REPLY_CLASSIFIED"
    REPLY_RELABELLED = "REPLY_RELABELLED"
    # Meetings (MEETING_BOOKED is a seed §11 core event, above).
    MEETING_PROPOSED = "MEETING_PROPOSED"
    MEETING_SLOT_CHOSEN = "MEETING_SLOT_CHOSEN"
    MEETING_ENDED = "MEETING_ENDED"


class ActorType(StrEnum):
    USER = "user"
    API_KEY = "api_key"
    SYSTEM = "system"
    PLATFORM = "platform"


class Actor(BaseModel):
    """Who caused an event. Stored as JSON inside the hashed record."""

    model_config = ConfigDict(frozen=True)

    type: ActorType
    id: str = Field(min_length=1, max_length=256)
    display: str | None = Field(default=None, max_length=200)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class AuditEventIn(BaseModel):
    """One event for `AuditChain.append_many`."""

    event_type: AuditEventType
    actor: Actor
    payload: dict[str, Any] = Field(default_factory=dict)
    correlation_id: str | None = Field(default=None, max_length=200)
    idempotency_key: str | None = Field(default=None, max_length=200)


class AuditEventRead(BaseModel):
    tenant_id: uuid.UUID | None
    seq: int
    actor: dict[str, Any]
    event_type: str
    event_json: dict[str, Any]
    correlation_id: str | None
    idempotency_key: str | None
    payload_hash: str
    prev_hash: str
    hash: str
    created_at: datetime


class AuditEventPage(BaseModel):
    items: list[AuditEventRead]
    next_cursor: int | None = Field(
        description="Pass as `after_seq` to get the next page; null on the last page."
    )


class AuditEventFilter(BaseModel):
    event_type: AuditEventType | None = None
    actor_id: str | None = None
    correlation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_seq: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=1000)


class ProblemOut(BaseModel):
    seq: int
    kind: str
    detail: str


class VerificationReport(BaseModel):
    scope: str
    ok: bool
    events_checked: int
    checkpoints_checked: int
    first_bad_seq: int | None
    problems: list[ProblemOut]
    seconds: float


class CheckpointOutcome(BaseModel):
    scope: str
    status: str = Field(description="created | unchanged | refused | failed")
    number: int | None = None
    tree_size: int | None = None
    detail: str | None = None


class CheckpointRunSummary(BaseModel):
    outcomes: list[CheckpointOutcome]
    created: int
    unchanged: int
    failed: int
    exported: int

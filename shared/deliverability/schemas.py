"""Pydantic I/O for deliverability: mailboxes, send-slot reservations, suppressions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.deliverability.model import (
    CapScope,
    HealthStatus,
    InvalidAddress,
    SuppressionKind,
    normalize_address,
    normalize_domain,
    time_zone,
)

Cap = Annotated[int, Field(ge=0, le=1_000_000)]


class MailboxCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str
    provider: Literal["gmail", "graph", "sandbox"]
    time_zone: str = "UTC"
    # Conservative warm-mailbox defaults for cold outbound, far below the providers' hard
    # limits (Workspace 2,000/day, Graph 30/min): staying well under them protects reputation.
    daily_cap: Cap = 200
    hourly_cap: Cap = 30
    new_recipients_cap: Cap = 40

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            return normalize_address(value)
        except InvalidAddress as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        time_zone(value)
        return value


class MailboxRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    address: str
    provider: str
    time_zone: str
    status: str
    daily_cap: int
    hourly_cap: int
    new_recipients_cap: int
    health_score: float
    health_status: HealthStatus
    bounce_rate: float
    complaint_rate: float
    health_sample_size: int
    health_updated_at: datetime | None
    created_at: datetime


class SendCaps(BaseModel):
    """The caps one send is checked against; None means that scope is not capped."""

    model_config = ConfigDict(frozen=True)

    mailbox_daily: int | None = None
    mailbox_hourly: int | None = None
    new_recipients: int | None = None
    campaign_daily: int | None = None
    tenant_daily: int | None = None


class CounterKey(BaseModel):
    model_config = ConfigDict(frozen=True)

    scope: CapScope
    scope_key: str
    window_start: datetime
    window_end: datetime


class Reservation(BaseModel):
    """A send slot held in every capped scope; `release` gives it back if the send is dropped."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    mailbox_id: uuid.UUID
    campaign_id: uuid.UUID | None
    recipient: str
    new_recipient: bool
    counters: list[CounterKey]


class CapRefusal(BaseModel):
    """The first scope whose cap is reached, and when its window reopens."""

    model_config = ConfigDict(frozen=True)

    scope: CapScope
    cap: int
    window_start: datetime
    window_end: datetime

    @property
    def retry_at(self) -> datetime:
        return self.window_end


class MailboxUsage(BaseModel):
    sent_today: int = 0
    sent_this_hour: int = 0
    new_recipients_today: int = 0
    campaign_today: int = 0
    tenant_today: int = 0


SuppressionReason = Literal["unsubscribe", "manual", "import", "bounce", "complaint"]


class SuppressionCreate(BaseModel):
    """An address (`jane@example.com`) or a domain (`example.com`, covering its subdomains).

    `kind` is inferred from the value when omitted.
    """

    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1, max_length=320)
    kind: SuppressionKind | None = None
    reason: Literal["manual", "bounce", "complaint"] = "manual"
    note: str | None = Field(default=None, max_length=2000)

    def normalized(self) -> tuple[SuppressionKind, str]:
        """Raises InvalidAddress when the value is not an address or domain of its kind."""
        kind = self.kind or (
            SuppressionKind.ADDRESS if "@" in self.value.strip("@ ") else SuppressionKind.DOMAIN
        )
        if kind is SuppressionKind.ADDRESS:
            return kind, normalize_address(self.value)
        return kind, normalize_domain(self.value)


class SuppressionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: SuppressionKind
    value: str
    reason: str
    note: str | None
    created_by: str
    created_at: datetime


class SuppressionPage(BaseModel):
    items: list[SuppressionRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class SuppressionStatus(BaseModel):
    """Whether an address may be contacted, and if not, which entry says so."""

    suppressed: bool
    scope: Literal["address", "domain", ""] = ""
    reason: str = ""
    suppression_id: uuid.UUID | None = None


class ImportRowError(BaseModel):
    row: int = Field(description="1-based line number in the CSV, the header being line 1")
    value: str
    error: str


class SuppressionImportReport(BaseModel):
    rows: int
    added: int
    already_suppressed: int
    errors: list[ImportRowError]

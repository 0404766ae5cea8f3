"""The CRM adapter port (seed §14): one interface, providers behind it.

Providers: ASEP's internal records (the default, and the system of record underneath any
CRM) and HubSpot (its own issue). Every write takes an idempotency key: activities run at
least once, and a retried write must find what the first attempt created instead of
creating it twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol


class EmailDirection(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class EngagementType(StrEnum):
    EMAIL = "EMAIL"
    NOTE = "NOTE"


class DealStageIntent(StrEnum):
    """What happened, which each tenant maps to a pipeline stage of its own CRM."""

    POSITIVE_REPLY = "POSITIVE_REPLY"
    MEETING_BOOKED = "MEETING_BOOKED"
    QUALIFIED = "QUALIFIED"
    DISQUALIFIED = "DISQUALIFIED"


@dataclass(frozen=True)
class ExternalRef:
    """An object's id in the CRM, and whether this call created it."""

    external_id: str
    created: bool = False


@dataclass(frozen=True)
class OAuthStart:
    authorize_url: str
    state: str


@dataclass(frozen=True)
class CompanyUpsert:
    domain: str
    name: str | None = None
    website: str | None = None


@dataclass(frozen=True)
class ContactUpsert:
    email: str
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    company_domain: str | None = None


@dataclass(frozen=True)
class EmailLog:
    contact_external_id: str
    subject: str
    body: str
    direction: EmailDirection
    sent_at: datetime
    message_id: str


@dataclass(frozen=True)
class MeetingLog:
    contact_external_id: str
    title: str
    start_at: datetime
    end_at: datetime
    attendees: tuple[str, ...] = ()
    deal_external_id: str | None = None


@dataclass(frozen=True)
class TaskCreate:
    contact_external_id: str
    title: str
    due_at: datetime
    note: str = ""


@dataclass(frozen=True)
class DealCreate:
    name: str
    source: str
    amount: Decimal | None = None
    pipeline_id: str | None = None
    stage_id: str | None = None
    close_date: date | None = None
    owner_id: str | None = None
    # When set (and stage_id is not), the tenant's stage mapping picks pipeline and stage.
    intent: DealStageIntent | None = None


@dataclass(frozen=True)
class EngagementLog:
    type: EngagementType
    contact_external_id: str
    body: str
    occurred_at: datetime
    subject: str | None = None
    deal_external_id: str | None = None


@dataclass(frozen=True)
class SuppressRequest:
    email: str
    reason: str


@dataclass(frozen=True)
class CrmWrite:
    """What a provider did, for the audit log (CRM_LOGGED) and for undoing it later."""

    operation: str
    object_type: str
    external_id: str
    idempotency_key: str
    details: dict[str, str] = field(default_factory=dict)


class CrmUnavailable(Exception):
    """Retryable: throttled, 5xx, disconnected. Writes wait and replay."""


class CrmRejected(Exception):
    """Not retryable: the CRM refused the data (validation), with its message."""


class CrmAdapter(Protocol):
    provider: str

    # Connection (seed §14.1). Providers that need no connection return None from connect.
    def connect(self) -> OAuthStart | None: ...

    def exchange_code_for_token(self, code: str, state: str) -> None: ...

    def refresh_token_if_needed(self) -> None: ...

    # Records.
    def upsert_company(self, company: CompanyUpsert, *, idempotency_key: str) -> ExternalRef: ...

    def upsert_contact(self, contact: ContactUpsert, *, idempotency_key: str) -> ExternalRef: ...

    def log_email(self, email: EmailLog, *, idempotency_key: str) -> ExternalRef: ...

    def log_meeting(self, meeting: MeetingLog, *, idempotency_key: str) -> ExternalRef: ...

    def create_task(self, task: TaskCreate, *, idempotency_key: str) -> ExternalRef: ...

    def set_lifecycle(
        self, contact_external_id: str, stage: str, *, idempotency_key: str
    ) -> None: ...

    def suppress(self, request: SuppressRequest, *, idempotency_key: str) -> None: ...

    # Deals (seed §14, "Update the CRM Adapter Interface").
    def find_deal_for_contact_or_company(
        self, *, contact_external_id: str | None, company_external_id: str | None
    ) -> ExternalRef | None: ...

    def create_deal(self, deal: DealCreate, *, idempotency_key: str) -> ExternalRef: ...

    def update_deal_stage(
        self, deal_external_id: str, stage_id: str, *, idempotency_key: str
    ) -> None: ...

    def associate_deal_to_contact(
        self, deal_external_id: str, contact_external_id: str, *, idempotency_key: str
    ) -> None: ...

    def associate_deal_to_company(
        self, deal_external_id: str, company_external_id: str, *, idempotency_key: str
    ) -> None: ...

    def log_engagement(self, engagement: EngagementLog, *, idempotency_key: str) -> ExternalRef: ...

    def writes(self) -> list[CrmWrite]:
        """The writes this adapter made since it was built (drained by the caller to audit)."""
        ...

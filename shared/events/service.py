"""Live events for the console and integrations: a tenant's audit chain as a feed.

Each event says what happened, when, and to which journey (correlation id); the details stay
in the audit log, readable with audit:read, so the feed carries no personal data.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select

from shared.audit.orm import AuditEvent
from shared.db.unit_of_work import tenant_unit_of_work

# Identifiers (never contact data or content) that the feed may repeat from an event. Not
# "reason": on some events it is a person's free text (an approval's rejection, a deal note).
SAFE_FIELDS = (
    "campaign_id",
    "prospect_id",
    "draft_id",
    "approval_id",
    "decision_id",
    "intent_id",
    "status",
    "step_id",
)


class LiveEvent(BaseModel):
    seq: int
    type: str
    correlation_id: str | None
    at: datetime
    refs: dict[str, Any]


def events_after(tenant_id: uuid.UUID, after_seq: int, limit: int = 200) -> list[LiveEvent]:
    with tenant_unit_of_work(tenant_id) as uow:
        rows = uow.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.tenant_id == tenant_id, AuditEvent.seq > after_seq)
            .order_by(AuditEvent.seq)
            .limit(limit)
        ).all()
        return [
            LiveEvent(
                seq=row.seq,
                type=row.event_type,
                correlation_id=row.correlation_id,
                at=row.created_at,
                refs={k: row.event_json[k] for k in SAFE_FIELDS if k in row.event_json},
            )
            for row in rows
        ]


def latest_seq(tenant_id: uuid.UUID) -> int:
    with tenant_unit_of_work(tenant_id) as uow:
        seq = uow.session.scalar(
            select(AuditEvent.seq)
            .where(AuditEvent.tenant_id == tenant_id)
            .order_by(AuditEvent.seq.desc())
            .limit(1)
        )
        return int(seq or 0)

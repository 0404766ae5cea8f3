"""Queries for replies, intent events and labels; every one goes through the tenant's unit
of work."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert

from shared.db.unit_of_work import TenantUnitOfWork
from shared.mail.orm import SendIntent
from shared.replies.orm import IntentEvent, Reply
from shared.replies.schemas import ReplyLabel


def reply_for_inbound(uow: TenantUnitOfWork, inbound_id: uuid.UUID) -> Reply | None:
    return uow.session.scalars(
        uow.scoped(Reply).where(Reply.inbound_id == inbound_id)
    ).one_or_none()


def insert_reply(uow: TenantUnitOfWork, values: dict[str, Any]) -> uuid.UUID | None:
    """The new row's id, or None when the inbound message was already classified (a
    concurrent or repeated call): one row per message, decided by the unique key."""
    inserted: uuid.UUID | None = uow.execute(
        insert(Reply)
        .values(id=uuid.uuid4(), tenant_id=uow.tenant_id, **values)
        .on_conflict_do_nothing(index_elements=["tenant_id", "inbound_id"])
        .returning(Reply.id)
    ).scalar_one_or_none()
    return inserted


def insert_intent_event(uow: TenantUnitOfWork, values: dict[str, Any]) -> uuid.UUID | None:
    inserted: uuid.UUID | None = uow.execute(
        insert(IntentEvent)
        .values(id=uuid.uuid4(), tenant_id=uow.tenant_id, **values)
        .on_conflict_do_nothing(index_elements=["tenant_id", "reply_id"])
        .returning(IntentEvent.id)
    ).scalar_one_or_none()
    return inserted


def intent_event_for_reply(uow: TenantUnitOfWork, reply_id: uuid.UUID) -> IntentEvent | None:
    return uow.session.scalars(
        uow.scoped(IntentEvent).where(IntentEvent.reply_id == reply_id)
    ).one_or_none()


def automatic_replies_to(uow: TenantUnitOfWork, intent_id: uuid.UUID) -> int:
    count: int = (
        uow.session.scalar(
            select(func.count())
            .select_from(Reply)
            .where(
                Reply.tenant_id == uow.tenant_id,
                Reply.intent_id == intent_id,
                Reply.label == ReplyLabel.OOO.value,
            )
        )
        or 0
    )
    return count


def mailbox_counts(
    uow: TenantUnitOfWork, mailbox_id: uuid.UUID, since: datetime
) -> tuple[int, int, int]:
    """Sends, bounces and complaints of one mailbox since `since`."""
    sent: int = (
        uow.session.scalar(
            select(func.count())
            .select_from(SendIntent)
            .where(
                SendIntent.tenant_id == uow.tenant_id,
                SendIntent.mailbox_id == mailbox_id,
                SendIntent.status == "sent",
                SendIntent.sent_at >= since,
            )
        )
        or 0
    )
    rows = uow.session.execute(
        select(Reply.label, func.count())
        .where(
            Reply.tenant_id == uow.tenant_id,
            Reply.mailbox_id == mailbox_id,
            Reply.created_at >= since,
            Reply.label.in_([ReplyLabel.BOUNCE.value, ReplyLabel.COMPLAINT.value]),
        )
        .group_by(Reply.label)
    ).all()
    counts = {label: int(n) for label, n in rows}
    return sent, counts.get(ReplyLabel.BOUNCE.value, 0), counts.get(ReplyLabel.COMPLAINT.value, 0)


def page_replies(
    uow: TenantUnitOfWork,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    label: ReplyLabel | None,
    prospect_id: uuid.UUID | None,
) -> list[Reply]:
    query = uow.scoped(Reply)
    if label is not None:
        query = query.where(Reply.label == label.value)
    if prospect_id is not None:
        query = query.where(Reply.prospect_id == prospect_id)
    if after is not None:
        query = query.where(tuple_(Reply.created_at, Reply.id) > tuple_(*after))
    return list(uow.session.scalars(query.order_by(Reply.created_at, Reply.id).limit(limit)))


def page_intent_events(
    uow: TenantUnitOfWork, *, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[IntentEvent]:
    query = uow.scoped(IntentEvent)
    if after is not None:
        query = query.where(tuple_(IntentEvent.created_at, IntentEvent.id) > tuple_(*after))
    return list(
        uow.session.scalars(query.order_by(IntentEvent.created_at, IntentEvent.id).limit(limit))
    )

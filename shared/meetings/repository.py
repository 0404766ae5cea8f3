"""Queries for meetings; every one goes through the tenant's unit of work."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import or_, tuple_

from shared.db.unit_of_work import TenantUnitOfWork
from shared.meetings.orm import Meeting
from shared.meetings.schemas import OPEN_STATUSES, MeetingStatus


def for_inbound(uow: TenantUnitOfWork, inbound_id: uuid.UUID) -> Meeting | None:
    return uow.session.scalars(
        uow.scoped(Meeting).where(Meeting.inbound_id == inbound_id)
    ).one_or_none()


def current_for_prospect(
    uow: TenantUnitOfWork, prospect_id: uuid.UUID, now: datetime
) -> Meeting | None:
    """The prospect's meeting in progress, or booked and still ahead."""
    return uow.session.scalars(
        uow.scoped(Meeting)
        .where(
            Meeting.prospect_id == prospect_id,
            or_(
                Meeting.status.in_([s.value for s in OPEN_STATUSES]),
                (Meeting.status == MeetingStatus.BOOKED.value)
                & (Meeting.chosen_slot["end"].astext > now.isoformat()),
            ),
        )
        .order_by(Meeting.created_at.desc())
        .limit(1)
    ).one_or_none()


def awaiting_choice(
    uow: TenantUnitOfWork, prospect_id: uuid.UUID, other_than_inbound: uuid.UUID
) -> Meeting | None:
    return uow.session.scalars(
        uow.scoped(Meeting)
        .where(
            Meeting.prospect_id == prospect_id,
            Meeting.status == MeetingStatus.PROPOSED.value,
            Meeting.inbound_id != other_than_inbound,
        )
        .order_by(Meeting.created_at.desc())
        .limit(1)
    ).one_or_none()


def page(
    uow: TenantUnitOfWork,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    status: MeetingStatus | None,
    prospect_id: uuid.UUID | None,
    campaign_id: uuid.UUID | None,
) -> list[Meeting]:
    query = uow.scoped(Meeting)
    if status is not None:
        query = query.where(Meeting.status == status.value)
    if prospect_id is not None:
        query = query.where(Meeting.prospect_id == prospect_id)
    if campaign_id is not None:
        query = query.where(Meeting.campaign_id == campaign_id)
    if after is not None:
        query = query.where(tuple_(Meeting.created_at, Meeting.id) > tuple_(*after))
    return list(uow.session.scalars(query.order_by(Meeting.created_at, Meeting.id).limit(limit)))

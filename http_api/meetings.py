"""Meetings (seed §10): the booking flows, and the public booking link.

`GET /v1/meetings/book/{token}` shows the proposal's options and never books (mail scanners
fetch every link); the page's buttons POST the choice, which is recorded once and wakes the
meeting's orchestration after the commit.
"""

from __future__ import annotations

import html
import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Query
from fastapi.responses import HTMLResponse

from http_api.auth import TenantContext, public_endpoint, require_permission
from http_api.orchestration_bridge import raise_event
from shared.identity.permissions import Permission
from shared.meetings import service
from shared.meetings.schemas import MeetingPage, MeetingRead, MeetingStatus

router = APIRouter(tags=["meetings"])

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto;">
<h1>{title}</h1>
{body}
</body></html>"""


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.format(title=html.escape(title), body=body),
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@router.get("/meetings")
def list_meetings(
    ctx: Annotated[TenantContext, require_permission(Permission.MEETINGS_READ)],
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    status: MeetingStatus | None = None,
    prospect_id: uuid.UUID | None = None,
    campaign_id: uuid.UUID | None = None,
) -> MeetingPage:
    """Booking flows, oldest first: proposed slots (UTC and the prospect's zone), the choice,
    the calendar event and the deal it advanced."""
    return service.list_meetings(
        ctx.uow,
        cursor=cursor,
        limit=limit,
        status=status,
        prospect_id=prospect_id,
        campaign_id=campaign_id,
    )


@router.get("/meetings/{meeting_id}")
def get_meeting(
    meeting_id: uuid.UUID,
    ctx: Annotated[TenantContext, require_permission(Permission.MEETINGS_READ)],
) -> MeetingRead:
    """One booking flow."""
    return service.get_meeting(ctx.uow, meeting_id)


@router.get("/meetings/book/{token}", response_class=HTMLResponse)
def booking_page(token: str, _: Annotated[None, public_endpoint()]) -> HTMLResponse:
    """The proposal's options as a form (public: the signed link is the credential)."""
    meeting = service.proposal_by_link(token)
    buttons = "".join(
        f'<p><button type="submit" name="option" value="{n}">{html.escape(slot.label)}</button></p>'
        for n, slot in enumerate(meeting.proposed_slots, start=1)
    )
    return _page(
        "Pick a time",
        f"<p>A {meeting.duration_minutes}-minute call. Which time suits you?</p>"
        f'<form method="post">{buttons}</form>',
    )


@router.post("/meetings/book/{token}", response_class=HTMLResponse)
def book_by_link(
    token: str,
    option: Annotated[int, Form(ge=1, le=10)],
    _: Annotated[None, public_endpoint()],
) -> HTMLResponse:
    """Pick option `option` (1-based) of the proposal, once; the booking follows."""
    meeting, choice = service.choose_by_link(token, option)
    raise_event(meeting.orchestration_instance_id, "slot_chosen", choice.model_dump(mode="json"))
    chosen = meeting.proposed_slots[option - 1]
    return _page(
        "Thank you",
        f"<p>You picked <strong>{html.escape(chosen.label)}</strong>. "
        "The calendar invitation is on its way.</p>",
    )

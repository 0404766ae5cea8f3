"""Public unsubscribe links: `GET /u/{token}` confirms, `POST /u/{token}` unsubscribes.

A GET never unsubscribes: mail security scanners fetch every link in a message, and would
opt recipients out of mail they never saw. The POST is RFC 8058's one-click request (body
`List-Unsubscribe=One-Click`, sent by the mailbox provider) and also what the confirmation
page's button submits. Both resolve the tenant from the verified token alone.
"""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from http_api.auth import public_endpoint
from shared.audit.schemas import Actor, ActorType
from shared.db.unit_of_work import tenant_unit_of_work
from shared.deliverability import suppression
from shared.deliverability.unsubscribe import (
    ONE_CLICK_BODY,
    InvalidUnsubscribeToken,
    UnsubscribeClaim,
    unsubscribe_signer,
)
from shared.errors import NotFound, ValidationFailed
from shared.identity import repository as identity_repository

router = APIRouter(prefix="/u", tags=["unsubscribe"])

UNSUBSCRIBE_ACTOR = Actor(type=ActorType.SYSTEM, id="unsubscribe-link", display="Recipient")
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 32rem; margin: 4rem auto;">
<h1>{title}</h1>
{body}
</body></html>"""


class UnknownUnsubscribeLink(NotFound):
    code = "unsubscribe_link_invalid"
    title = "This unsubscribe link is not valid"


class NotOneClick(ValidationFailed):
    code = "unsubscribe_not_one_click"
    title = "Expected List-Unsubscribe=One-Click"


def _claim(token: str) -> UnsubscribeClaim:
    try:
        return unsubscribe_signer().verify(token)
    except InvalidUnsubscribeToken as exc:
        raise UnknownUnsubscribeLink() from exc


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.format(title=html.escape(title), body=body),
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@router.get("/{token}", response_class=HTMLResponse)
def confirm_page(token: str, _: Annotated[None, public_endpoint()]) -> HTMLResponse:
    claim = _claim(token)
    name, value = ONE_CLICK_BODY.split("=")
    form = (
        f"<p>Stop emails to <strong>{html.escape(claim.address)}</strong>?</p>"
        f'<form method="post"><input type="hidden" name="{name}" value="{value}">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return _page("Unsubscribe", form)


def _unsubscribe(claim: UnsubscribeClaim) -> None:
    with tenant_unit_of_work(claim.tenant_id) as uow:
        if identity_repository.get_current_tenant(uow) is None:
            raise UnknownUnsubscribeLink()
        suppression.unsubscribe(uow, claim.address, UNSUBSCRIBE_ACTOR)


@router.post("/{token}", response_class=HTMLResponse)
async def one_click(
    token: str,
    _: Annotated[None, public_endpoint()],
    list_unsubscribe: Annotated[str | None, Form(alias="List-Unsubscribe")] = None,
) -> HTMLResponse:
    claim = _claim(token)
    if list_unsubscribe != "One-Click":
        raise NotOneClick(f"The request body must be '{ONE_CLICK_BODY}' (RFC 8058).")
    await run_in_threadpool(_unsubscribe, claim)
    return _page(
        "You are unsubscribed",
        f"<p>{html.escape(claim.address)} will receive no more emails from this sender.</p>",
    )

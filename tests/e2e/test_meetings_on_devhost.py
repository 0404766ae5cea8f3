"""Meeting booking end to end on devhost, through the HTTP API: a positive reply becomes a
deal and a proposal of three slots in the reply's thread; the prospect books one through the
link (or by replying with their pick); the event lands in the sandbox calendar with its
invitation, the meeting is booked, the deal moves to MEETING_BOOKED, and every step is in
the audit log under the prospect's correlation id."""

from __future__ import annotations

import re
import uuid
from email import message_from_string, policy
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg

from shared.db.server import DatabaseUrls, libpq_dsn
from tests.devhost.conftest import DevhostProcess
from tests.e2e.harness import Customer, onboard, wait_until

REP = "sam@vendor.example"


def _text(message: dict[str, Any]) -> str:
    parsed = message_from_string(str(message["raw"]), policy=policy.default)
    body = parsed.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def _start_campaign(customer: Customer) -> tuple[str, str, dict[str, str]]:
    mailbox_id = customer.mailbox(REP)
    imported = customer.import_csv(
        b"email,first_name,company,website\n"
        b"ana@acme.example,Ana,Acme,acme.example\n"
        b"bo@globex.example,Bo,Globex,globex.example\n"
    )
    assert imported["imported"] == 2, imported
    campaign_id = customer.campaign(
        "Meetings",
        [mailbox_id],
        {
            "name": "one touch",
            "steps": [
                {
                    "id": "t1",
                    "type": "email",
                    "subject": "Idea for {{company_name}}",
                    "body": "Hi {{first_name}},\n\n{{personalization}}\n\nWorth a quick chat?",
                    "approval": "every_time",
                }
            ],
            "variables": ["personalization"],
        },
    )
    api, revops = customer.api, customer.revops
    assert api.post(f"/v1/campaigns/{campaign_id}/start", headers=revops).status_code == 202
    prospects = {
        p["email"]: p["id"] for p in api.get("/v1/prospects", headers=revops).json()["items"]
    }
    return mailbox_id, campaign_id, prospects


def _inject(customer: Customer, mailbox_id: str, sender: str, in_reply_to: str, text: str) -> str:
    raw = (
        f"From: <{sender}>\r\nTo: {REP}\r\nSubject: Re: our chat\r\n"
        f"Message-ID: <reply-{uuid.uuid4().hex}@example>\r\n"
        f"In-Reply-To: {in_reply_to}\r\n\r\n{text}\r\n"
    ).encode()
    injected = customer.api.post(
        f"/v1/sandbox/mailboxes/{mailbox_id}/inbound",
        content=raw,
        headers={**customer.revops, "content-type": "message/rfc822"},
    )
    assert injected.status_code == 202, injected.text
    inbound_id: str = injected.json()["inbound"]["id"]
    return inbound_id


def test_a_positive_reply_is_booked_by_link_or_by_a_reply(
    host: DevhostProcess, database: DatabaseUrls
) -> None:
    customer = onboard(host, database, "meetings")
    api, revops = customer.api, customer.revops
    mailbox_id, campaign_id, prospects = _start_campaign(customer)

    def two_approvals() -> bool:
        return customer.approve_pending() >= 2 or len(customer.sent(mailbox_id)) >= 2

    wait_until(two_approvals, host, what="the first touches' approvals")

    def touches() -> dict[str, dict[str, Any]]:
        sent = customer.sent(mailbox_id, raw=True)
        return {str(m["recipients"][0]): m for m in sent} if len(sent) >= 2 else {}

    touch = wait_until(touches, host, what="two first touches")
    for address in ("ana@acme.example", "bo@globex.example"):
        _inject(
            customer,
            mailbox_id,
            address,
            touch[address]["message_id"],
            "Sounds interesting, let's talk next week.",
        )

    def proposals() -> dict[str, dict[str, Any]]:
        sent = customer.sent(mailbox_id, raw=True)
        found = {str(m["recipients"][0]): m for m in sent if "Option 1:" in _text(m) and m["raw"]}
        return found if len(found) == 2 else {}

    proposal = wait_until(proposals, host, timeout=90, what="two meeting proposals")
    for address, message in proposal.items():
        raw = str(message["raw"])
        assert "In-Reply-To: <reply-" in raw, raw  # answers the prospect's own reply
        assert "List-Unsubscribe" in raw
        assert "Option 3:" in _text(message)
        assert address in ("ana@acme.example", "bo@globex.example")

    def meetings(status: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = api.get(
            "/v1/meetings", headers=revops, params={"status": status}
        ).json()["items"]
        return items

    proposed = {m["prospect_id"]: m for m in wait_until(lambda: meetings("proposed"), host)}
    assert len(proposed) == 2, proposed

    # Ana books through the link: the GET only shows the options, the POST books.
    link = re.search(r"https://\S+/v1/meetings/book/\S+", _text(proposal["ana@acme.example"]))
    assert link, _text(proposal["ana@acme.example"])
    path = urlsplit(link.group(0)).path
    page = httpx.get(f"{host.base_url}{path}", timeout=10)
    assert page.status_code == 200
    assert page.text.count('name="option"') == 3
    picked = httpx.post(f"{host.base_url}{path}", data={"option": "2"}, timeout=10)
    assert picked.status_code == 200, picked.text
    again = httpx.post(f"{host.base_url}{path}", data={"option": "1"}, timeout=10)
    assert again.status_code == 409

    # Bo answers the proposal in its thread and picks the third option.
    _inject(
        customer,
        mailbox_id,
        "bo@globex.example",
        proposal["bo@globex.example"]["message_id"],
        "Option 3 works for me, thanks!",
    )

    def booked() -> dict[str, dict[str, Any]]:
        # The deal follows the booking (the orchestration's last step).
        items = [m for m in meetings("booked") if m["deal_id"]]
        return {m["prospect_id"]: m for m in items} if len(items) == 2 else {}

    done = wait_until(booked, host, timeout=90, what="both meetings booked")
    ana = done[prospects["ana@acme.example"]]
    bo = done[prospects["bo@globex.example"]]
    assert (ana["choice_source"], ana["chosen_slot"]) == (
        "link",
        proposed[ana["prospect_id"]]["proposed_slots"][1],
    )
    assert (bo["choice_source"], bo["chosen_slot"]) == (
        "reply",
        proposed[bo["prospect_id"]]["proposed_slots"][2],
    )
    one = api.get(f"/v1/meetings/{ana['id']}", headers=revops).json()
    assert one["deal_id"] == ana["deal_id"]

    deals = {d["prospect_id"]: d for d in api.get("/v1/deals", headers=revops).json()["items"]}
    for meeting in (ana, bo):
        deal = deals[meeting["prospect_id"]]
        assert (deal["id"], deal["stage"], deal["status"]) == (
            meeting["deal_id"],
            "MEETING_BOOKED",
            "created",
        )

    tenant_id = customer.tenant.id
    with psycopg.connect(libpq_dsn(database.owner)) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant_id),))
        events = conn.execute(
            "SELECT uid, starts_at, status, convert_from(ics, 'UTF8') FROM sandbox_calendar_events"
            " WHERE tenant_id = %s ORDER BY starts_at",
            (tenant_id,),
        ).fetchall()
        trail = conn.execute(
            "SELECT correlation_id, event_type FROM audit_events WHERE tenant_id = %s "
            "AND (event_type LIKE 'MEETING_%%' OR event_type LIKE 'DEAL_%%'"
            " OR event_type IN ('CRM_LOGGED', 'SEND_SUCCEEDED'))",
            (tenant_id,),
        ).fetchall()
    assert sorted(uid for uid, *_ in events) == sorted(
        [ana["calendar_event_uid"], bo["calendar_event_uid"]]
    )
    for _, _, status, ics in events:
        assert status == "confirmed"
        assert "METHOD:REQUEST" in ics
        assert "ATTENDEE" in ics
    for address in ("ana@acme.example", "bo@globex.example"):
        correlation = f"{campaign_id}:{prospects[address]}"
        kinds = [kind for corr, kind in trail if corr == correlation]
        for expected in (
            "DEAL_CREATED",
            "MEETING_PROPOSED",
            "MEETING_SLOT_CHOSEN",
            "MEETING_BOOKED",
            "DEAL_UPDATED",
            "CRM_LOGGED",
        ):
            assert expected in kinds, (address, kinds)
        assert kinds.count("MEETING_BOOKED") == 1
        assert kinds.count("SEND_SUCCEEDED") == 2  # the first touch and the proposal

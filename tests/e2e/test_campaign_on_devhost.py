"""The outbound wedge end to end on devhost, through the HTTP API as a customer drives it:
mailbox, prospects, campaign, sequence, start; first touches wait for a manager's approval;
sends carry the unsubscribe headers and footer; a reply stops that prospect's journey; a
.gov address is blocked by policy; every step is in the audit log under the journey's id."""

from __future__ import annotations

import email
import email.policy
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

from shared.db.server import DatabaseUrls, libpq_dsn
from shared.identity import dev_issuer
from shared.identity.model import Role
from shared.identity.schemas import TenantCreate
from shared.identity.service import provision_tenant
from tests.devhost.conftest import DevhostProcess
from tests.e2e.harness import POSTAL, onboard, wait_until

CSV = (
    b"email,first_name,last_name,title,company,website\n"
    b"ana@acme.example,Ana,Alvarez,CTO,Acme,acme.example\n"
    b"bo@globex.example,Bo,Berg,VP Sales,Globex,globex.example\n"
    b"cy@initech.example,Cy,Chen,Head of Ops,Initech,initech.example\n"
    b"dee@agency.gov,Dee,Diaz,Director,Agency,agency.gov\n"
)
SEQUENCE = {
    "name": "two touches",
    "steps": [
        {
            "id": "t1",
            "type": "email",
            "subject": "Idea for {{company_name}}",
            "body": "Hi {{first_name}},\n\n{{personalization}}\n\nWorth a quick chat?",
            "approval": "every_time",
            "next": "d1",
        },
        {"id": "d1", "type": "delay", "seconds": 3, "next": "t2"},
        {
            "id": "t2",
            "type": "email",
            "subject": "Re: idea for {{company_name}}",
            "body": "Hi {{first_name}}, bumping this in case it got buried.",
            "approval": "once",
        },
    ],
    "variables": ["personalization"],
}


def test_a_campaign_runs_end_to_end(host: DevhostProcess, database: DatabaseUrls) -> None:
    customer = onboard(host, database, "e2e")
    tenant, api, revops, manager = (
        customer.tenant,
        customer.api,
        customer.revops,
        customer.manager,
    )

    mailbox = api.post(
        "/v1/mailboxes",
        headers=revops,
        json={
            "address": "sam@vendor.example",
            "provider": "sandbox",
            "time_zone": "UTC",
            "daily_cap": 100,
            "hourly_cap": 50,
            "new_recipients_cap": 40,
        },
    )
    assert mailbox.status_code == 201, mailbox.text
    mailbox_id = mailbox.json()["id"]
    imported = api.post(
        "/v1/prospects/import", content=CSV, headers={**revops, "content-type": "text/csv"}
    )
    assert imported.json()["imported"] == 4, imported.text
    campaign = api.post(
        "/v1/campaigns",
        headers=revops,
        json={
            "name": "E2E",
            "settings": {
                "mode": "full",
                "mailbox_ids": [mailbox_id],
                "send_window": {
                    "start": "00:00",
                    "end": "00:00",
                    "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                },
                "canary": {"enabled": False},
            },
        },
    )
    assert campaign.status_code == 201, campaign.text
    campaign_id = campaign.json()["id"]
    no_sequence = api.post(f"/v1/campaigns/{campaign_id}/start", headers=revops)
    assert no_sequence.status_code == 409
    assert "no sequence" in no_sequence.json()["detail"]
    assert (
        api.post(
            f"/v1/campaigns/{campaign_id}/sequences", headers=revops, json=SEQUENCE
        ).status_code
        == 201
    )
    added = api.post(
        f"/v1/campaigns/{campaign_id}/prospects", headers=revops, json={"all_active": True}
    )
    assert added.json()["added"] == 4, added.text
    started = api.post(f"/v1/campaigns/{campaign_id}/start", headers=revops)
    assert started.status_code == 202, started.text

    def pending_approvals() -> list[dict[str, Any]]:
        page = api.get("/v1/approvals", headers=manager, params={"status": "pending"}).json()
        items: list[dict[str, Any]] = page["items"]
        return items if len(items) >= 3 else []

    approvals = wait_until(pending_approvals, host, what="three first-touch approvals")
    assert len(approvals) == 3, "the .gov prospect is blocked before any approval"
    for approval in approvals:
        decided = api.post(f"/v1/approvals/{approval['id']}/approve", headers=manager, json={})
        assert decided.status_code == 200, decided.text

    def sent_messages() -> list[dict[str, Any]]:
        page = api.get(
            f"/v1/sandbox/mailboxes/{mailbox_id}/messages",
            headers=revops,
            params={"direction": "sent", "raw": "true"},
        ).json()
        items: list[dict[str, Any]] = page["items"]
        return items

    first_touches = wait_until(
        lambda: len(sent_messages()) >= 3 and sent_messages(), host, what="three first touches"
    )
    ana = next(m for m in first_touches if "ana@acme.example" in str(m.get("recipients")))
    reply_id = f"<reply-{uuid.uuid4().hex}@acme.example>"
    reply = (
        "From: Ana Alvarez <ana@acme.example>\r\nTo: sam@vendor.example\r\n"
        f"Subject: Re: {ana['subject']}\r\nMessage-ID: {reply_id}\r\n"
        f"In-Reply-To: {ana['message_id']}\r\nReferences: {ana['message_id']}\r\n\r\n"
        "Sounds interesting, let's talk next week.\r\n"
    ).encode()
    injected = api.post(
        f"/v1/sandbox/mailboxes/{mailbox_id}/inbound",
        content=reply,
        headers={**revops, "content-type": "message/rfc822"},
    )
    assert injected.status_code == 202, injected.text

    def journeys_done() -> dict[str, int] | None:
        status = api.get(
            "/v1/execution/status", headers=revops, params={"campaign_id": campaign_id}
        ).json()
        members: dict[str, int] = status[0]["members"]
        live = members.get("running", 0) + members.get("awaiting_approval", 0)
        return members if live == 0 and sum(members.values()) == 4 else None

    members = wait_until(journeys_done, host, timeout=90, what="every journey to end")
    assert members == {"completed": 2, "replied": 1, "held": 1}, members

    sent = sent_messages()

    def in_reply_to(message: dict[str, Any]) -> str | None:
        parsed = email.message_from_string(str(message["raw"]), policy=email.policy.default)
        return str(parsed["In-Reply-To"]) if parsed["In-Reply-To"] else None

    # Ana's positive reply may be answered with a meeting offer in its thread: not a touch.
    offers = [m for m in sent if in_reply_to(m) == reply_id]
    assert [str(m["recipients"][0]) for m in offers] in ([], ["ana@acme.example"])
    touches = [m for m in sent if m not in offers]
    recipients = sorted(str(m["recipients"][0]) for m in touches)
    assert recipients == [
        "ana@acme.example",
        "bo@globex.example",
        "bo@globex.example",
        "cy@initech.example",
        "cy@initech.example",
    ], "Ana replied after touch one; the .gov address never got mail"
    assert len({m["message_id"] for m in sent}) == len(sent)
    for message in sent:
        parsed = email.message_from_string(str(message["raw"]), policy=email.policy.default)
        assert parsed["List-Unsubscribe"].startswith("<https://")
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        body = parsed.get_body(preferencelist=("plain",))
        assert body is not None
        text = body.get_content()
        assert POSTAL in text

    with psycopg.connect(libpq_dsn(database.owner)) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant.id),))
        rows = conn.execute(
            "SELECT DISTINCT event_type FROM audit_events WHERE tenant_id = %s "
            "AND correlation_id LIKE %s",
            (tenant.id, f"{campaign_id}:%"),
        ).fetchall()
    journey_events = {row[0] for row in rows}
    assert {"RESEARCH_COMPLETED", "DRAFT_CREATED", "SEND_SUCCEEDED", "CRM_LOGGED"} <= journey_events


def test_live_events_stream_over_sse(host: DevhostProcess, database: DatabaseUrls) -> None:
    slug = f"sse-{uuid.uuid4().hex[:8]}"
    provision_tenant(TenantCreate(slug=slug, name="SSE Corp"))
    operator = {"Authorization": f"Bearer {dev_issuer.dev_token(slug, Role.OPERATOR)}"}
    url = f"{host.base_url}/v1/events/stream"
    refused = httpx.get(url, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    events: list[dict[str, Any]] = []
    with httpx.stream("GET", url, params={"after": 0}, headers=operator, timeout=10) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
            if len(events) >= 2:
                break
    assert events[0]["type"] == "TENANT_CREATED"
    assert events[0]["seq"] == 1
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)


def test_kill_switch_mid_run_stops_every_send(host: DevhostProcess, database: DatabaseUrls) -> None:
    customer = onboard(host, database, "kill")
    mailbox_id = customer.mailbox("kill@vendor.example")
    customer.import_csv(
        ("email,first_name\n" + "".join(f"k{n}@co{n}.example,K{n}\n" for n in range(20))).encode()
    )
    campaign_id = customer.campaign(
        "kill",
        [mailbox_id],
        {
            "name": "two touches, a long pause",
            "steps": [
                {
                    "id": "t1",
                    "type": "email",
                    "subject": "Idea",
                    "body": "Hi {{first_name}}",
                    "approval": "once",
                    "next": "d1",
                },
                {"id": "d1", "type": "delay", "seconds": 30, "next": "t2"},
                {"id": "t2", "type": "email", "subject": "Re: idea", "body": "Bumping this."},
            ],
        },
    )
    customer.api.post(f"/v1/campaigns/{campaign_id}/start", headers=customer.revops)

    def first_touches_out() -> bool:
        customer.approve_pending()
        return len(customer.sent(mailbox_id)) >= 10

    wait_until(first_touches_out, host, what="first touches")
    killed = customer.api.post("/v1/kill-switch", headers=customer.manager, json={"reason": "e2e"})
    assert killed.status_code == 200, killed.text
    killed_at = datetime.now(UTC)

    def ended() -> dict[str, int] | None:
        members = customer.members(campaign_id)
        live = sum(members.get(s, 0) for s in ("pending", "running", "awaiting_approval"))
        return members if live == 0 else None

    members = wait_until(ended, host, timeout=60, what="journeys to stop")
    assert members.get("completed", 0) == 0, members
    sent = customer.sent(mailbox_id)
    after = [m for m in sent if datetime.fromisoformat(m["created_at"]) > killed_at]
    assert after == [], "no message may be accepted after the kill switch's activation"
    assert len(sent) < 40, "second touches never went out"


def test_fifty_prospects_under_provider_faults_give_exact_outcomes(
    host: DevhostProcess, database: DatabaseUrls
) -> None:
    """50 prospects (5 .gov, 3 suppressed after import), approve every time, two mailboxes
    whose provider fails 20% of calls (429, 5xx, timeouts, accepted-but-unknown): exactly 42
    approvals and 42 sends with distinct Message-IDs, 8 journeys held by policy (government
    recipients, suppressed recipients), nothing sent twice."""
    customer = onboard(host, database, "faults")
    # Two mailboxes: the shipped pack allows 40 new recipients per mailbox per day.
    mailbox_ids = [customer.mailbox(f"faults{n}@vendor.example", hourly_cap=200) for n in range(2)]
    for mailbox_id in mailbox_ids:
        faults = customer.api.put(
            f"/v1/sandbox/mailboxes/{mailbox_id}/faults",
            headers=customer.revops,
            json={
                "throttle_rate": 0.05,
                "unavailable_rate": 0.05,
                "timeout_rate": 0.05,
                "unknown_rate": 0.05,
                "retry_after_seconds": 0.2,
                "seed": 11,
            },
        )
        assert faults.status_code == 200, faults.text
    rows = [
        f"f{n}@agency{n}.gov,F{n}" if n % 10 == 9 else f"f{n}@co{n}.example,F{n}" for n in range(50)
    ]
    customer.import_csv(("email,first_name\n" + "\n".join(rows)).encode())
    for n in (0, 1, 2):
        customer.api.post(
            "/v1/suppressions", headers=customer.revops, json={"value": f"f{n}@co{n}.example"}
        ).raise_for_status()
    # Suppression is checked at import, not retroactively: these three are members, and
    # policy holds them at draft time.
    campaign_id = customer.campaign(
        "faults",
        mailbox_ids,
        {
            "name": "one",
            "steps": [
                {
                    "id": "t1",
                    "type": "email",
                    "subject": "Idea",
                    "body": "Hi {{first_name}}",
                    "approval": "every_time",
                }
            ],
        },
    )
    customer.api.post(f"/v1/campaigns/{campaign_id}/start", headers=customer.revops)
    approved = 0

    def done() -> dict[str, int] | None:
        nonlocal approved
        approved += customer.approve_pending()
        members = customer.members(campaign_id)
        live = sum(members.get(s, 0) for s in ("pending", "running", "awaiting_approval"))
        return members if live == 0 else None

    members = wait_until(done, host, timeout=240, what="every journey under faults")
    assert members == {"completed": 42, "held": 8}, members
    assert approved == 42
    sent = [m for mailbox_id in mailbox_ids for m in customer.sent(mailbox_id)]
    # The sandbox keeps every message it accepted, duplicates included.
    assert len(sent) == 42
    assert len({m["message_id"] for m in sent}) == 42
    assert len({m["recipients"][0] for m in sent}) == 42


def test_pause_holds_sends_and_resume_finishes_the_campaign(
    host: DevhostProcess, database: DatabaseUrls
) -> None:
    customer = onboard(host, database, "pause")
    mailbox_id = customer.mailbox("pause@vendor.example")
    customer.import_csv(
        ("email,first_name\n" + "".join(f"q{n}@co{n}.example,Q{n}\n" for n in range(10))).encode()
    )
    campaign_id = customer.campaign(
        "pause",
        [mailbox_id],
        {
            "name": "two",
            "steps": [
                {
                    "id": "t1",
                    "type": "email",
                    "subject": "Idea",
                    "body": "Hi {{first_name}}",
                    "approval": "once",
                    "next": "d1",
                },
                {"id": "d1", "type": "delay", "seconds": 2, "next": "t2"},
                {"id": "t2", "type": "email", "subject": "Re: idea", "body": "Bumping this."},
            ],
        },
    )
    customer.api.post(f"/v1/campaigns/{campaign_id}/start", headers=customer.revops)

    def first_touches() -> bool:
        customer.approve_pending()
        return len(customer.sent(mailbox_id)) >= 10

    wait_until(first_touches, host, what="first touches")
    paused = customer.api.post(f"/v1/campaigns/{campaign_id}/pause", headers=customer.revops)
    assert paused.json()["status"] == "paused", paused.text
    at_pause = len(customer.sent(mailbox_id))
    time.sleep(5)  # the delay (2 s) passes; journeys reach their second send and hold
    assert len(customer.sent(mailbox_id)) == at_pause, "nothing is sent while paused"
    resumed = customer.api.post(f"/v1/campaigns/{campaign_id}/resume", headers=customer.revops)
    assert resumed.json()["status"] == "active", resumed.text
    wait_until(
        lambda: customer.members(campaign_id).get("completed") == 10,
        host,
        timeout=60,
        what="the campaign to finish after resume",
    )
    assert len(customer.sent(mailbox_id)) == 20

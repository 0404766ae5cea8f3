"""Replies to deals end to end on devhost, through the HTTP API: a positive reply to the
first touch becomes one deal (internal CRM, deals_shadow, DEAL_CREATED under the prospect's
journey id) through reply_to_deal; an unsubscribe makes no deal and suppresses at once; a
medium-confidence reply waits for "Create Deal?" and becomes a deal once a manager approves."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import httpx
import psycopg

from shared.db.server import DatabaseUrls, libpq_dsn
from tests.devhost.conftest import DevhostProcess
from tests.e2e.harness import onboard, wait_until


def _instance(host: DevhostProcess, instance_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{host.base_url}/runtime/webhooks/durabletask/instances/{quote(instance_id, safe='')}",
        timeout=10,
    )
    return dict(response.json()) if response.status_code == 200 else {}


def test_replies_become_deals_or_suppressions(host: DevhostProcess, database: DatabaseUrls) -> None:
    """A positive reply to the first touch makes one deal (internal CRM, deals_shadow,
    DEAL_CREATED under the prospect's journey id); an unsubscribe makes none and suppresses."""
    customer = onboard(host, database, "deals")
    tenant, api, revops, manager = (
        customer.tenant,
        customer.api,
        customer.revops,
        customer.manager,
    )
    mailbox_id = customer.mailbox("sam@vendor.example")
    imported = customer.import_csv(
        b"email,first_name,company,website\n"
        + b"".join(
            f"{who}@{org}.example,{who},{org},{org}.example\n".encode()
            for who, org in (("ana", "acme"), ("bo", "globex"), ("cy", "initech"))
        )
    )
    assert imported["imported"] == 3, imported
    first_step: dict[str, Any] = {
        "id": "t1",
        "type": "email",
        "subject": "Idea for {{company_name}}",
        "body": "Hi {{first_name}},\n\n{{personalization}}\n\nWorth a quick chat?",
        "approval": "every_time",
    }
    campaign_id = customer.campaign(
        "Deals",
        [mailbox_id],
        {"name": "one touch", "steps": [first_step], "variables": ["personalization"]},
    )
    assert api.post(f"/v1/campaigns/{campaign_id}/start", headers=revops).status_code == 202

    def pending_approvals() -> list[dict[str, Any]]:
        page = api.get("/v1/approvals", headers=manager, params={"status": "pending"}).json()
        items: list[dict[str, Any]] = page["items"]
        return items if len(items) >= 3 else []

    for approval in wait_until(pending_approvals, host, what="three first-touch approvals"):
        api.post(f"/v1/approvals/{approval['id']}/approve", headers=manager, json={})

    def sent() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = api.get(
            f"/v1/sandbox/mailboxes/{mailbox_id}/messages",
            headers=revops,
            params={"direction": "sent"},
        ).json()["items"]
        return items if len(items) >= 3 else []

    touches = {str(m["recipients"][0]): m for m in wait_until(sent, host, what="three touches")}
    prospects = {
        p["email"]: p["id"] for p in api.get("/v1/prospects", headers=revops).json()["items"]
    }
    inbound: dict[str, str] = {}

    def reply(address: str, text: str) -> None:
        touch = touches[address]
        raw = (
            f"From: <{address}>\r\nTo: sam@vendor.example\r\nSubject: Re: {touch['subject']}\r\n"
            f"Message-ID: <reply-{uuid.uuid4().hex}@example>\r\n"
            f"In-Reply-To: {touch['message_id']}\r\n\r\n{text}\r\n"
        ).encode()
        injected = api.post(
            f"/v1/sandbox/mailboxes/{mailbox_id}/inbound",
            content=raw,
            headers={**revops, "content-type": "message/rfc822"},
        )
        assert injected.status_code == 202, injected.text
        inbound[address] = injected.json()["inbound"]["id"]

    reply("ana@acme.example", "Sounds interesting, let's talk next week.")
    reply("bo@globex.example", "Please remove me from your list.")

    def finished(address: str) -> dict[str, Any] | None:
        status = _instance(host, f"deal:{inbound[address]}")
        return status if status.get("runtimeStatus") == "Completed" else None

    ana_flow = wait_until(lambda: finished("ana@acme.example"), host, what="Ana's reply_to_deal")
    bo_flow = wait_until(lambda: finished("bo@globex.example"), host, what="Bo's reply_to_deal")
    assert ana_flow["output"]["status"] == "created", ana_flow
    assert bo_flow["output"] == {"status": "no_deal", "label": "unsubscribe"}, bo_flow

    deals = api.get("/v1/deals", headers=revops).json()["items"]
    assert [(d["prospect_id"], d["status"], d["stage"]) for d in deals] == [
        (prospects["ana@acme.example"], "created", "POSITIVE_REPLY")
    ]
    assert deals[0]["crm_provider"] == "internal"
    ana_journey = f"{campaign_id}:{prospects['ana@acme.example']}"
    bo_journey = f"{campaign_id}:{prospects['bo@globex.example']}"
    with psycopg.connect(libpq_dsn(database.owner)) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant.id),))
        crm_deal = conn.execute(
            "SELECT object_type FROM crm_objects WHERE tenant_id = %s AND id::text = %s",
            (tenant.id, deals[0]["crm_external_id"]),
        ).fetchone()
        events = conn.execute(
            "SELECT correlation_id, event_type FROM audit_events WHERE tenant_id = %s "
            "AND event_type LIKE 'DEAL_%%'",
            (tenant.id,),
        ).fetchall()
        suppressed = conn.execute(
            "SELECT count(*) FROM suppressions WHERE tenant_id = %s AND value = %s",
            (tenant.id, "bo@globex.example"),
        ).fetchone()
    assert crm_deal == ("deal",)
    assert events == [(ana_journey, "DEAL_CREATED")]
    assert bo_journey not in {row[0] for row in events}
    assert suppressed == (1,)

    # Medium confidence (the offline model gives this one about 0.70): "Create Deal?" first.
    reply("cy@initech.example", "Could be interesting.")

    def deal_approvals() -> list[dict[str, Any]]:
        page = api.get("/v1/approvals", headers=manager, params={"status": "pending"}).json()
        return [a for a in page["items"] if a["action_kind"] == "deal"]

    (approval,) = wait_until(deal_approvals, host, what="the 'Create Deal?' approval")
    assert approval["prospect_id"] == prospects["cy@initech.example"]
    decided = api.post(f"/v1/approvals/{approval['id']}/approve", headers=manager, json={})
    assert decided.status_code == 200, decided.text
    cy_flow = wait_until(lambda: finished("cy@initech.example"), host, what="Cy's reply_to_deal")
    assert cy_flow["output"]["status"] == "created", cy_flow
    assert cy_flow["output"]["outcome"] == "approval"
    created = api.get("/v1/deals", headers=revops, params={"status": "created"}).json()["items"]
    assert sorted(d["prospect_id"] for d in created) == sorted(
        [prospects["ana@acme.example"], prospects["cy@initech.example"]]
    )
    (cy_deal,) = [d for d in created if d["prospect_id"] == prospects["cy@initech.example"]]
    assert cy_deal["approval_id"] == approval["id"]

"""Campaign execution on devhost, measured through the HTTP API. Prints JSON.

    .venv/bin/python bench/campaign_run.py [--prospects 2000] [--approval-prospects 30]

throughput: a one-touch campaign of N prospects with approvals out of the way (the tenant
activates the shipped pack minus the first-touch approval and the 40-new-recipients cap, as
a benchmark tenant may) — drafts+sends per second from start to the last send recorded,
each send having passed research, drafting, policy twice, the cap reservation, the send
intent, delivery to the sandbox mailbox and CRM logging.

approval_latency: with the shipped pack (first touches wait for a person), a manager
approves each pending draft; latency is approval POST → the message recorded as sent by the
sandbox mailbox. Goal p95 ≤ 2 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlalchemy import select

from asep_cli.demo import running_devhost
from shared.db.unit_of_work import tenant_unit_of_work
from shared.identity import dev_issuer
from shared.identity.model import Role
from shared.identity.orm import Tenant
from shared.identity.schemas import TenantCreate
from shared.identity.service import provision_tenant

DEFAULT_PACK = Path(__file__).resolve().parent.parent / "shared" / "policy" / "default_pack.yaml"
ALWAYS = {
    "start": "00:00",
    "end": "00:00",
    "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
}
ONE_TOUCH = {
    "name": "one touch",
    "steps": [
        {
            "id": "t1",
            "type": "email",
            "subject": "Idea for {{company_name}}",
            "body": "Hi {{first_name}}, {{personalization}} Open to a call?",
            "approval": "every_time",
        }
    ],
    "variables": ["personalization"],
}


def _tenant(label: str) -> tuple[str, dict[str, str], dict[str, str], dict[str, str]]:
    slug = f"{label}-{uuid.uuid4().hex[:6]}"
    tenant = provision_tenant(TenantCreate(slug=slug, name=label))
    with tenant_unit_of_work(tenant.id) as uow:
        row = uow.session.scalars(select(Tenant).where(Tenant.id == tenant.id)).one()
        row.settings = {"postal_address": "1 Bench Rd, Boston, MA 02110"}

    def bearer(role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {dev_issuer.dev_token(slug, role, 7200)}"}

    return slug, bearer(Role.REVOPS), bearer(Role.MANAGER), bearer(Role.ADMIN)


def _campaign(api: httpx.Client, revops: dict[str, str], prospects: int) -> tuple[str, str]:
    mailbox = api.post(
        "/v1/mailboxes",
        headers=revops,
        json={
            "address": "bench@vendor.example",
            "provider": "sandbox",
            "daily_cap": 100_000,
            "hourly_cap": 100_000,
            "new_recipients_cap": 100_000,
        },
    ).json()["id"]
    rows = "".join(f"p{n}@company{n % 400}.example,P{n},CTO\n" for n in range(prospects))
    api.post(
        "/v1/prospects/import",
        content=("email,first_name,title\n" + rows).encode(),
        headers={**revops, "content-type": "text/csv"},
    ).raise_for_status()
    campaign = api.post(
        "/v1/campaigns",
        headers=revops,
        json={
            "name": "bench",
            "settings": {
                "mode": "full",
                "mailbox_ids": [mailbox],
                "send_window": ALWAYS,
                "canary": {"enabled": False},
            },
        },
    ).json()["id"]
    api.post(
        f"/v1/campaigns/{campaign}/sequences", headers=revops, json=ONE_TOUCH
    ).raise_for_status()
    api.post(
        f"/v1/campaigns/{campaign}/prospects", headers=revops, json={"all_active": True}
    ).raise_for_status()
    return campaign, mailbox


def _sent(api: httpx.Client, headers: dict[str, str], mailbox: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after = 0
    while True:
        page = api.get(
            f"/v1/sandbox/mailboxes/{mailbox}/messages",
            headers=headers,
            params={"direction": "sent", "after": after, "limit": 500},
        ).json()
        items.extend(page["items"])
        if page["next_cursor"] is None:
            return items
        after = page["next_cursor"]


def throughput(api: httpx.Client, prospects: int) -> dict[str, Any]:
    _, revops, _, admin = _tenant("bench-run")
    pack = yaml.safe_load(DEFAULT_PACK.read_text())
    pack["id"] = "bench-no-first-touch-approval"
    pack["rules"] = [
        r
        for r in pack["rules"]
        if r["id"] not in ("first-touch-approval", "new-recipients-daily-cap")
    ]
    saved = api.post(
        "/v1/policies",
        headers={**admin, "content-type": "application/yaml"},
        content=yaml.safe_dump(pack).encode(),
    )
    saved.raise_for_status()
    api.post(f"/v1/policies/{saved.json()['id']}/activate", headers=admin).raise_for_status()
    campaign, mailbox = _campaign(api, revops, prospects)
    started = time.monotonic()
    api.post(f"/v1/campaigns/{campaign}/start", headers=revops).raise_for_status()
    sent = 0
    while sent < prospects and time.monotonic() - started < 1800:
        time.sleep(2)
        status = api.get(
            "/v1/execution/status", headers=revops, params={"campaign_id": campaign}
        ).json()[0]["members"]
        sent = status.get("completed", 0) + status.get("held", 0)
    seconds = time.monotonic() - started
    messages = _sent(api, revops, mailbox)
    return {
        "prospects": prospects,
        "sent": len(messages),
        "distinct_message_ids": len({m["message_id"] for m in messages}),
        "seconds": round(seconds, 1),
        "drafts_and_sends_per_second": round(len(messages) / seconds, 2),
    }


def approval_latency(api: httpx.Client, prospects: int) -> dict[str, Any]:
    _, revops, manager, _ = _tenant("bench-approve")
    campaign, mailbox = _campaign(api, revops, prospects)
    api.post(f"/v1/campaigns/{campaign}/start", headers=revops).raise_for_status()
    approved_at: dict[str, datetime] = {}
    deadline = time.monotonic() + 600
    while len(approved_at) < prospects and time.monotonic() < deadline:
        page = api.get(
            "/v1/approvals", headers=manager, params={"status": "pending", "limit": 200}
        ).json()
        for approval in page["items"]:
            if approval["id"] in approved_at:
                continue
            at = datetime.now(UTC)
            api.post(
                f"/v1/approvals/{approval['id']}/approve", headers=manager, json={}
            ).raise_for_status()
            approved_at[approval["prospect_id"] or approval["id"]] = at
            time.sleep(0.2)  # one at a time, as a person works through a queue
        time.sleep(0.2)
    while len(_sent(api, revops, mailbox)) < len(approved_at) and time.monotonic() < deadline:
        time.sleep(0.5)
    by_recipient = {str(m["recipients"][0]): m for m in _sent(api, revops, mailbox)}
    prospect_email = {
        p["id"]: p["email"]
        for p in api.get("/v1/prospects", headers=revops, params={"limit": 500}).json()["items"]
    }
    latencies = []
    for prospect_id, at in approved_at.items():
        message = by_recipient.get(prospect_email.get(prospect_id, ""))
        if message is not None:
            latencies.append((datetime.fromisoformat(message["created_at"]) - at).total_seconds())
    latencies.sort()
    return {
        "approvals": len(approved_at),
        "sent_after_approval": len(latencies),
        "p50_seconds": round(statistics.median(latencies), 3) if latencies else None,
        "p95_seconds": round(latencies[int(len(latencies) * 0.95) - 1], 3) if latencies else None,
        "goal_p95_seconds": 2.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prospects", type=int, default=2000)
    parser.add_argument("--approval-prospects", type=int, default=30)
    parser.add_argument("--url", help="a running devhost (default: start one)")
    args = parser.parse_args()
    with running_devhost(args.url) as base, httpx.Client(base_url=base, timeout=60) as api:
        result = {
            "benchmark": "campaign_run",
            "throughput": throughput(api, args.prospects),
            "approval_latency": approval_latency(api, args.approval_prospects),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

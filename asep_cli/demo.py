"""`asep demo`: a whole campaign on the embedded default, driven through the HTTP API.

Starts devhost (unless --url points at a running one), creates a fresh demo tenant with five
sandbox mailboxes, imports 200 prospects (a few suppressed, a few .gov), builds a three-touch
sequence with second-scale delays and a canary, approves as the demo manager, injects a few
replies and prints a JSON summary of what the platform did and why.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import func, select, text

from shared.config import REPO_ROOT, get_settings
from shared.db.unit_of_work import tenant_unit_of_work
from shared.drafting.orm import Draft
from shared.identity import dev_issuer
from shared.identity.model import Role
from shared.identity.orm import Tenant
from shared.identity.schemas import TenantCreate
from shared.identity.service import provision_tenant

MAILBOXES = 5
PROSPECTS = 200
SUPPRESSED = 6
GOVERNMENT = 4
REPLIES = 5
SEQUENCE = {
    "name": "Demo: three touches",
    "steps": [
        {
            "id": "t1",
            "type": "email",
            "subject": "Idea for {{company_name}}",
            "body": "Hi {{first_name}},\n\n{{personalization}}\n\nOpen to a 20-minute call?",
            "approval": "once",
            "next": "d1",
        },
        {"id": "d1", "type": "delay", "seconds": 2, "next": "t2"},
        {
            "id": "t2",
            "type": "email",
            "subject": "Re: idea for {{company_name}}",
            "body": "Hi {{first_name}}, bringing this back up in case it got buried.",
            "approval": "once",
            "next": "d2",
        },
        {"id": "d2", "type": "delay", "seconds": 2, "next": "b1"},
        {"id": "b1", "type": "branch", "condition": "replied", "then": None, "otherwise": "t3"},
        {
            "id": "t3",
            "type": "email",
            "subject": "Closing the loop",
            "body": "Hi {{first_name}}, I'll stop here. Reply any time if timing changes.",
            "approval": "once",
        },
    ],
    "variables": ["personalization"],
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def running_devhost(url: str | None) -> Iterator[str]:
    if url:
        yield url.rstrip("/")
        return
    port = _free_port()
    log = (get_settings().data_dir / "demo-devhost.log").open("ab")
    env = {**os.environ, "ASEP_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, no user input
        [
            sys.executable,
            "-m",
            "devhost",
            "--app-dir",
            str(REPO_ROOT),
            "--port",
            str(port),
            "--log-level",
            "WARNING",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError("devhost exited; see .asep/demo-devhost.log")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1.0)
    raise TimeoutError(f"demo: timed out waiting for {what}")


def _csv(rng: random.Random) -> tuple[bytes, list[str]]:
    lines = ["email,first_name,last_name,title,company,website"]
    titles = ["CTO", "VP Sales", "Head of RevOps", "Director of Marketing", "COO"]
    government = set(rng.sample(range(PROSPECTS), GOVERNMENT))
    emails = []
    for n in range(PROSPECTS):
        domain = f"agency{n}.gov" if n in government else f"company{n % 120}.example"
        email = f"person{n}@{domain}"
        emails.append(email)
        lines.append(f"{email},First{n},Last{n},{rng.choice(titles)},Company {n % 120},{domain}")
    return ("\n".join(lines) + "\n").encode(), emails


def run_demo(url: str | None = None, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - demo data, reproducible on purpose
    started_at = time.monotonic()
    slug = f"demo-{uuid.uuid4().hex[:6]}"
    tenant = provision_tenant(TenantCreate(slug=slug, name="Demo Outbound Co"))
    with tenant_unit_of_work(tenant.id) as uow:
        row = uow.session.scalars(select(Tenant).where(Tenant.id == tenant.id)).one()
        row.settings = {
            "postal_address": "500 Demo Way, Springfield, IL 62701",
            "sender_name": "Dana Demo",
            "company_name": "Demo Outbound Co",
        }
    revops = {"Authorization": f"Bearer {dev_issuer.dev_token(slug, Role.REVOPS)}"}
    manager = {"Authorization": f"Bearer {dev_issuer.dev_token(slug, Role.MANAGER)}"}
    with running_devhost(url) as base, httpx.Client(base_url=base, timeout=60) as api:
        mailbox_ids = []
        for n in range(MAILBOXES):
            created = api.post(
                "/v1/mailboxes",
                headers=revops,
                json={
                    "address": f"rep{n}@demo-outbound.example",
                    "provider": "sandbox",
                    "daily_cap": 200,
                    "hourly_cap": 200,
                    "new_recipients_cap": 40,
                },
            )
            created.raise_for_status()
            mailbox_ids.append(created.json()["id"])
        data, emails = _csv(rng)
        for email in rng.sample([e for e in emails if not e.endswith(".gov")], SUPPRESSED):
            api.post("/v1/suppressions", headers=revops, json={"value": email}).raise_for_status()
        report = api.post(
            "/v1/prospects/import", content=data, headers={**revops, "content-type": "text/csv"}
        )
        report.raise_for_status()
        campaign = api.post(
            "/v1/campaigns",
            headers=revops,
            json={
                "name": "Demo campaign",
                "offer": "A 20-minute pipeline review",
                "settings": {
                    "mode": "full",
                    "mailbox_ids": mailbox_ids,
                    "send_window": {
                        "start": "00:00",
                        "end": "00:00",
                        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                    },
                    "canary": {
                        "enabled": True,
                        "size": 10,
                        "observation_seconds": 4,
                        "max_bounce_rate": 0.2,
                    },
                },
            },
        )
        campaign.raise_for_status()
        campaign_id = campaign.json()["id"]
        api.post(
            f"/v1/campaigns/{campaign_id}/sequences", headers=revops, json=SEQUENCE
        ).raise_for_status()
        membership = api.post(
            f"/v1/campaigns/{campaign_id}/prospects", headers=revops, json={"all_active": True}
        )
        membership.raise_for_status()
        api.post(f"/v1/campaigns/{campaign_id}/start", headers=revops).raise_for_status()

        asked: set[str] = set()
        approved: set[str] = set()

        def approve_pending() -> None:
            page = api.get(
                "/v1/approvals", headers=manager, params={"status": "pending", "limit": 200}
            ).json()
            for approval in page["items"]:
                if approval["id"] not in asked:
                    asked.add(approval["id"])
                    # Refused when "approve once" decided it meanwhile: not counted as granted.
                    answer = api.post(
                        f"/v1/approvals/{approval['id']}/approve", headers=manager, json={}
                    )
                    if answer.is_success:
                        approved.add(approval["id"])

        def sent() -> list[dict[str, Any]]:
            messages = []
            for mailbox_id in mailbox_ids:
                page = api.get(
                    f"/v1/sandbox/mailboxes/{mailbox_id}/messages",
                    headers=revops,
                    params={"direction": "sent", "limit": 500},
                ).json()
                messages.extend(page["items"])
            return messages

        replied = False

        def settled() -> dict[str, int] | None:
            nonlocal replied
            approve_pending()
            # Listing five mailboxes is the demo's heaviest poll: only until replies go in.
            if not replied:
                messages = sent()
                if len(messages) >= 40:
                    for message in rng.sample(messages, REPLIES):
                        _inject_reply(api, revops, message)
                    replied = True
            status = api.get(
                "/v1/execution/status", headers=revops, params={"campaign_id": campaign_id}
            ).json()[0]
            members: dict[str, int] = status["members"]
            live = sum(members.get(s, 0) for s in ("pending", "running", "awaiting_approval"))
            return members if replied and live == 0 else None

        members = _wait(settled, timeout=240, what="every journey to finish")
        messages = sent()
    with tenant_unit_of_work(tenant.id) as uow:
        drafted = uow.session.scalar(
            select(func.count()).select_from(
                uow.scoped(Draft).where(Draft.campaign_id == uuid.UUID(campaign_id)).subquery()
            )
        )
        blocked = Counter(
            rule
            for (reason,) in uow.execute(
                _HELD_REASONS, {"tenant_id": tenant.id, "campaign_id": campaign_id}
            )
            for rule in [reason.split(":", 1)[0]]
        )
    return {
        "tenant": slug,
        "campaign_id": campaign_id,
        "prospects_imported": report.json()["imported"],
        "suppressed_not_enrolled": membership.json()["skipped_inactive"],
        "drafted": drafted,
        "approvals_granted": len(approved),
        "sent": len(messages),
        "unique_message_ids": len({m["message_id"] for m in messages}),
        "journeys": members,
        "blocked_by_rule": dict(blocked),
        "replies_injected": REPLIES,
        "seconds": round(time.monotonic() - started_at, 1),
    }


def _inject_reply(api: httpx.Client, headers: dict[str, str], message: dict[str, Any]) -> None:
    recipient = str(message["recipients"][0])
    raw = (
        f"From: {recipient}\r\nTo: {message['sender']}\r\nSubject: Re: {message['subject']}\r\n"
        f"Message-ID: <reply-{uuid.uuid4().hex}@{recipient.split('@')[1]}>\r\n"
        f"In-Reply-To: {message['message_id']}\r\nReferences: {message['message_id']}\r\n\r\n"
        "Thanks for reaching out. Could you send over some times next week?\r\n"
    ).encode()
    mailbox = api.get("/v1/mailboxes", headers=headers).json()
    mailbox_id = next(m["id"] for m in mailbox if m["address"] == message["sender"])
    api.post(
        f"/v1/sandbox/mailboxes/{mailbox_id}/inbound",
        content=raw,
        headers={**headers, "content-type": "message/rfc822"},
    ).raise_for_status()


_HELD_REASONS = text(
    "SELECT reason FROM campaign_members WHERE tenant_id = :tenant_id "
    "AND campaign_id = :campaign_id AND status = 'held' AND reason IS NOT NULL"
)


def main(url: str | None) -> int:
    summary = run_demo(url)
    print(json.dumps(summary, indent=2))
    return 0

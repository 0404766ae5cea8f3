"""kill -9 devhost five times while a 200-prospect campaign runs: after the restarts every
prospect's touches went out exactly once — 0 duplicate sends, 0 prospects lost — checked
from the sandbox mailbox's own store, which keeps every message it accepted."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from shared.db.server import DatabaseUrls, libpq_dsn
from shared.identity import dev_issuer
from shared.identity.model import Role
from shared.identity.schemas import TenantCreate
from shared.identity.service import provision_tenant
from tests.devhost.conftest import DevhostProcess
from tests.e2e.harness import app_on_devhost

PROSPECTS = 200
MAILBOXES = 5
SEQUENCE = {
    "name": "two touches",
    "steps": [
        {
            "id": "t1",
            "type": "email",
            "subject": "Idea for {{company_name}}",
            "body": "Hi {{first_name}}, {{personalization}} Worth a chat?",
            "approval": "once",
            "next": "d1",
        },
        {"id": "d1", "type": "delay", "seconds": 1, "next": "t2"},
        {
            "id": "t2",
            "type": "email",
            "subject": "Re: idea",
            "body": "Hi {{first_name}}, bumping.",
            "approval": "once",
        },
    ],
    "variables": ["personalization"],
}


@pytest.fixture
def host(database: DatabaseUrls, tmp_path: Path) -> Iterator[DevhostProcess]:
    """Its own devhost: this test kills it, which the module-wide one must not see."""
    process = app_on_devhost(database, tmp_path / "devhost.log")
    process.start(timeout=60)
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.slow
def test_kill_minus_nine_during_a_campaign_loses_and_repeats_nothing(
    host: DevhostProcess, database: DatabaseUrls
) -> None:
    rng = random.Random()
    slug = f"crash-{uuid.uuid4().hex[:8]}"
    tenant = provision_tenant(TenantCreate(slug=slug, name="Crash Co"))
    with psycopg.connect(libpq_dsn(database.owner)) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant.id),))
        conn.execute(
            "UPDATE tenants SET settings = %s::jsonb WHERE id = %s",
            (json.dumps({"postal_address": "1 Crash Rd, Austin, TX"}), tenant.id),
        )
        conn.commit()
    revops = {"Authorization": f"Bearer {dev_issuer.dev_token(slug, Role.REVOPS)}"}
    manager = {"Authorization": f"Bearer {dev_issuer.dev_token(slug, Role.MANAGER)}"}

    def api() -> httpx.Client:
        return httpx.Client(base_url=host.base_url, timeout=30)

    with api() as client:
        mailbox_ids = [
            client.post(
                "/v1/mailboxes",
                headers=revops,
                json={
                    "address": f"rep{n}@crash.example",
                    "provider": "sandbox",
                    "daily_cap": 500,
                    "hourly_cap": 500,
                    "new_recipients_cap": 40,
                },
            ).json()["id"]
            for n in range(MAILBOXES)
        ]
        rows = "".join(f"p{n}@company{n}.example,P{n},CTO\n" for n in range(PROSPECTS))
        client.post(
            "/v1/prospects/import",
            content=("email,first_name,title\n" + rows).encode(),
            headers={**revops, "content-type": "text/csv"},
        ).raise_for_status()
        campaign_id = client.post(
            "/v1/campaigns",
            headers=revops,
            json={
                "name": "crash",
                "settings": {
                    "mode": "full",
                    "mailbox_ids": mailbox_ids,
                    "canary": {"enabled": False},
                    "send_window": {
                        "start": "00:00",
                        "end": "00:00",
                        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                    },
                },
            },
        ).json()["id"]
        client.post(
            f"/v1/campaigns/{campaign_id}/sequences", headers=revops, json=SEQUENCE
        ).raise_for_status()
        client.post(
            f"/v1/campaigns/{campaign_id}/prospects", headers=revops, json={"all_active": True}
        ).raise_for_status()
        client.post(f"/v1/campaigns/{campaign_id}/start", headers=revops).raise_for_status()

    def approve_pending() -> None:
        with api() as client:
            page = client.get(
                "/v1/approvals", headers=manager, params={"status": "pending", "limit": 200}
            ).json()
            for approval in page["items"]:
                client.post(f"/v1/approvals/{approval['id']}/approve", headers=manager, json={})

    def members() -> dict[str, int]:
        with api() as client:
            status = client.get(
                "/v1/execution/status", headers=revops, params={"campaign_id": campaign_id}
            ).json()
        counts: dict[str, int] = status[0]["members"]
        return counts

    def sandbox_sent() -> list[tuple[str, str]]:
        with psycopg.connect(libpq_dsn(database.owner)) as conn:
            conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant.id),))
            rows = conn.execute(
                "SELECT message_id, recipients->>0 FROM sandbox_messages "
                "WHERE tenant_id = %s AND direction = 'sent'",
                (tenant.id,),
            ).fetchall()
        return [(str(message_id), str(recipient)) for message_id, recipient in rows]

    kills = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            approve_pending()
            counts = members()
        except httpx.HTTPError:
            counts = {}
        done = counts.get("completed", 0) + counts.get("held", 0)
        if done == PROSPECTS:
            break
        if kills < 5 and len(sandbox_sent()) > kills * 70:
            time.sleep(rng.uniform(0.0, 1.5))
            host.kill()
            host.start(timeout=60)
            kills += 1
        time.sleep(0.3)
    assert kills == 5
    final = members()
    assert final == {"completed": PROSPECTS}, final
    sent = sandbox_sent()
    assert len({message_id for message_id, _ in sent}) == len(sent), "a message went out twice"
    per_recipient = Counter(recipient for _, recipient in sent)
    assert set(per_recipient.values()) == {2}, "every prospect got each of its two touches once"
    assert len(per_recipient) == PROSPECTS

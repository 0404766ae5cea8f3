"""What the end-to-end tests share: the app on devhost, and a customer driving it over HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from shared.db.server import DatabaseUrls, libpq_dsn
from shared.identity import dev_issuer
from shared.identity.model import Role
from shared.identity.schemas import TenantCreate, TenantRead
from shared.identity.service import provision_tenant
from tests.devhost.conftest import DevhostProcess

REPO = Path(__file__).resolve().parents[2]
POSTAL = "1 Market St, San Francisco, CA 94105"
ALWAYS = {
    "start": "00:00",
    "end": "00:00",
    "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
}


def app_on_devhost(database: DatabaseUrls, log_path: Path) -> DevhostProcess:
    """function_app.py served by devhost against the test database (not started yet)."""
    return DevhostProcess(
        app_dir=REPO,
        dsn=libpq_dsn(database.owner),
        log_path=log_path,
        env={
            "ASEP_ENV": "test",
            "ASEP_DATABASE_NAME": str(database.owner.database),
            "ASEP_LOG_LEVEL": "WARNING",
            # What a deployment sets: RFC 8058 one-click links must be https.
            "ASEP_PUBLIC_BASE_URL": "https://asep.example.test",
            "ASEP_PAUSE_POLL_SECONDS": "1",
        },
    )


def wait_until(
    condition: Callable[[], Any], host: DevhostProcess, timeout: float = 60.0, what: str = ""
) -> Any:
    """Poll `condition` until truthy; on timeout, fail with devhost's view of the world."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    listing = httpx.get(f"{host.base_url}/admin/devhost/instances", timeout=10).json()
    # The instances still running are the ones that explain a timeout; finished ones are noise.
    unfinished = [i for i in listing["instances"] if i["runtimeStatus"] != "Completed"]
    invocations = httpx.get(f"{host.base_url}/admin/devhost/invocations?limit=30", timeout=10).text
    raise AssertionError(
        f"timed out waiting for {what}\ninstance counts: {listing['counts']}\n"
        f"unfinished instances: {json.dumps(unfinished)[:6000]}\n"
        f"invocations: {invocations[-4000:]}\nlog: {host.log_path.read_text()[-3000:]}"
    )


@dataclass
class Customer:
    """A tenant, its REST client and the bearer headers of its revops and manager users."""

    tenant: TenantRead
    api: httpx.Client
    revops: dict[str, str]
    manager: dict[str, str]

    def mailbox(self, address: str, **caps: int) -> str:
        created = self.api.post(
            "/v1/mailboxes",
            headers=self.revops,
            json={"address": address, "provider": "sandbox", **caps},
        )
        assert created.status_code == 201, created.text
        mailbox_id: str = created.json()["id"]
        return mailbox_id

    def import_csv(self, data: bytes) -> dict[str, Any]:
        report = self.api.post(
            "/v1/prospects/import",
            content=data,
            headers={**self.revops, "content-type": "text/csv"},
        )
        assert report.status_code == 200, report.text
        body: dict[str, Any] = report.json()
        return body

    def campaign(self, name: str, mailbox_ids: list[str], sequence: dict[str, Any]) -> str:
        """A full-mode campaign, canary off, sending all day, with every active prospect."""
        created = self.api.post(
            "/v1/campaigns",
            headers=self.revops,
            json={
                "name": name,
                "settings": {
                    "mode": "full",
                    "mailbox_ids": mailbox_ids,
                    "send_window": ALWAYS,
                    "canary": {"enabled": False},
                },
            },
        )
        assert created.status_code == 201, created.text
        campaign_id: str = created.json()["id"]
        self.api.post(
            f"/v1/campaigns/{campaign_id}/sequences", headers=self.revops, json=sequence
        ).raise_for_status()
        self.api.post(
            f"/v1/campaigns/{campaign_id}/prospects", headers=self.revops, json={"all_active": True}
        ).raise_for_status()
        return campaign_id

    def approve_pending(self) -> int:
        pending = self.api.get(
            "/v1/approvals", headers=self.manager, params={"status": "pending", "limit": 200}
        ).json()["items"]
        for approval in pending:
            self.api.post(f"/v1/approvals/{approval['id']}/approve", headers=self.manager, json={})
        return len(pending)

    def members(self, campaign_id: str) -> dict[str, int]:
        status = self.api.get(
            "/v1/execution/status", headers=self.revops, params={"campaign_id": campaign_id}
        ).json()
        counts: dict[str, int] = status[0]["members"]
        return counts

    def sent(self, mailbox_id: str, *, raw: bool = False) -> list[dict[str, Any]]:
        page = self.api.get(
            f"/v1/sandbox/mailboxes/{mailbox_id}/messages",
            headers=self.revops,
            params={"direction": "sent", "limit": 500, "raw": str(raw).lower()},
        )
        items: list[dict[str, Any]] = page.json()["items"]
        return items


def onboard(host: DevhostProcess, database: DatabaseUrls, label: str) -> Customer:
    """A new tenant with a postal address (required to send) and dev users."""
    slug = f"{label}-{uuid.uuid4().hex[:8]}"
    tenant = provision_tenant(TenantCreate(slug=slug, name=f"{label} corp"))
    with psycopg.connect(libpq_dsn(database.owner)) as conn:
        conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant.id),))
        conn.execute(
            "UPDATE tenants SET settings = %s::jsonb WHERE id = %s",
            (json.dumps({"postal_address": POSTAL, "sender_name": "Sam"}), tenant.id),
        )
        conn.commit()

    def bearer(role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {dev_issuer.dev_token(slug, role)}"}

    return Customer(
        tenant,
        httpx.Client(base_url=host.base_url, timeout=30),
        bearer(Role.REVOPS),
        bearer(Role.MANAGER),
    )

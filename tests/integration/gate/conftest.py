"""A tenant ready to send: CAN-SPAM postal address, a healthy mailbox, a clean message."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from shared.audit.schemas import Actor, ActorType
from shared.db.server import DatabaseUrls
from shared.db.unit_of_work import tenant_unit_of_work
from shared.deliverability import service as caps
from shared.deliverability.schemas import MailboxCreate
from shared.identity import repository as identity_repository
from shared.identity.schemas import TenantCreate
from shared.identity.service import provision_tenant
from shared.policy.gate import SendRequest

ACTOR = Actor(type=ActorType.SYSTEM, id="send-activity")
POSTAL_ADDRESS = "Acme Inc., 1 Main Street, Springfield, IL 62701, USA"


@dataclass
class Sender:
    tenant_id: uuid.UUID
    mailbox_id: uuid.UUID

    def request(self, recipient: str, **overrides: Any) -> SendRequest:
        fields: dict[str, Any] = {
            "action_id": f"send-{uuid.uuid4()}",
            "mailbox_id": self.mailbox_id,
            "recipient": recipient,
            "touch_number": 2,
            "subject": "Following up",
            "body": "Hi Jane,\n\nA short follow-up.\n\n"
            f"{POSTAL_ADDRESS}\nUnsubscribe: http://localhost:7071/u/token",
        }
        fields.update(overrides)
        return SendRequest.model_validate(fields)


def make_sender(
    label: str = "gate", tenant_settings: dict[str, Any] | None = None, **mailbox: Any
) -> Sender:
    tenant = provision_tenant(TenantCreate(slug=f"{label}-{uuid.uuid4().hex[:8]}", name=label))
    fields: dict[str, Any] = {
        "address": "sam@acme.example",
        "provider": "sandbox",
        "daily_cap": 1000,
        "hourly_cap": 1000,
        "new_recipients_cap": 1000,
    }
    fields.update(mailbox)
    with tenant_unit_of_work(tenant.id) as uow:
        row = identity_repository.get_current_tenant(uow)
        assert row is not None
        row.settings = {"postal_address": POSTAL_ADDRESS, **(tenant_settings or {})}
        mailbox_id = caps.create_mailbox(uow, MailboxCreate.model_validate(fields), ACTOR).id
    return Sender(tenant.id, mailbox_id)


@pytest.fixture
def sender(database: DatabaseUrls) -> Sender:
    return make_sender()


def events(tenant_id: uuid.UUID, event_type: str) -> list[tuple[int, dict[str, Any]]]:
    with tenant_unit_of_work(tenant_id) as uow:
        rows = uow.execute(
            text(
                "SELECT seq, event_json FROM audit_events WHERE tenant_id = :t "
                "AND event_type = :e ORDER BY seq"
            ),
            {"t": tenant_id, "e": event_type},
        ).all()
        return [(int(seq), dict(payload)) for seq, payload in rows]

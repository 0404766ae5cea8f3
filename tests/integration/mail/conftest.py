"""A tenant with a postal address and sandbox mailboxes, committed (deliver and reconcile open
their own units of work), and a controllable clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest

from shared.audit.schemas import Actor, ActorType
from shared.db.server import DatabaseUrls
from shared.db.unit_of_work import tenant_unit_of_work
from shared.deliverability.schemas import MailboxCreate
from shared.deliverability.service import create_mailbox
from shared.identity.orm import Tenant
from shared.identity.schemas import TenantCreate, TenantRead
from shared.identity.service import provision_tenant
from shared.mail.sandbox import fault_rngs

POSTAL_ADDRESS = "ShaunAI Ltd, 1 Example Street, London EC1A 1AA, UK"
ADMIN = Actor(type=ActorType.SYSTEM, id="tests")


@dataclass
class FakeClock:
    now: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class MailTenant:
    tenant: TenantRead
    mailbox_id: uuid.UUID
    address: str

    @property
    def id(self) -> uuid.UUID:
        return self.tenant.id

    def add_mailbox(self, provider: Literal["gmail", "graph", "sandbox"] = "sandbox") -> uuid.UUID:
        with tenant_unit_of_work(self.id) as uow:
            address = f"{provider}-{uuid.uuid4().hex[:6]}@sender.example"
            return create_mailbox(uow, MailboxCreate(address=address, provider=provider), ADMIN).id

    def set_settings(self, **settings: object) -> None:
        with tenant_unit_of_work(self.id) as uow:
            tenant = uow.session.get(Tenant, self.id)
            assert tenant is not None
            tenant.settings = {**tenant.settings, **settings}


def make_mail_tenant(label: str = "mail") -> MailTenant:
    tenant = provision_tenant(
        TenantCreate(slug=f"{label}-{uuid.uuid4().hex[:10]}", name=f"Tenant {label}")
    )
    with tenant_unit_of_work(tenant.id) as uow:
        row = uow.session.get(Tenant, tenant.id)
        assert row is not None
        row.settings = {**row.settings, "postal_address": POSTAL_ADDRESS}
        address = f"rep-{uuid.uuid4().hex[:6]}@sender.example"
        mailbox = create_mailbox(uow, MailboxCreate(address=address, provider="sandbox"), ADMIN)
    return MailTenant(tenant=tenant, mailbox_id=mailbox.id, address=address)


@pytest.fixture
def mail_tenant(database: DatabaseUrls) -> MailTenant:
    return make_mail_tenant()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def _fresh_fault_rngs() -> Iterator[None]:
    fault_rngs.reset()
    yield
    fault_rngs.reset()

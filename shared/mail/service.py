"""Use cases behind the sandbox endpoints (local and test only)."""

from __future__ import annotations

import uuid

from shared.db.unit_of_work import TenantUnitOfWork
from shared.deliverability.orm import Mailbox as MailboxRow
from shared.deliverability.service import MailboxNotFound
from shared.errors import Conflict
from shared.mail import sandbox
from shared.mail.inbound import ingest_raw
from shared.mail.schemas import FaultPlan, IngestResult, SandboxMessagePage


class NotASandboxMailbox(Conflict):
    code = "not_a_sandbox_mailbox"
    title = "Not a sandbox mailbox"


def _sandbox_mailbox(uow: TenantUnitOfWork, mailbox_id: uuid.UUID) -> MailboxRow:
    mailbox = uow.get(MailboxRow, mailbox_id)
    if mailbox is None:
        raise MailboxNotFound(f"Mailbox {mailbox_id} does not exist.")
    if mailbox.provider != "sandbox":
        raise NotASandboxMailbox(f"Mailbox {mailbox.address} is a {mailbox.provider} mailbox.")
    return mailbox


def inject_inbound(uow: TenantUnitOfWork, mailbox_id: uuid.UUID, raw: bytes) -> IngestResult:
    """A message arrives at a sandbox mailbox: the provider stores it, and we ingest it as a
    Gmail push or Graph notification would make us do. The reply signal is raised after
    commit by `shared.mail.inbound.dispatch_reply_signals`."""
    _sandbox_mailbox(uow, mailbox_id)
    stored = sandbox.deposit_inbound(uow, mailbox_id, raw)
    return ingest_raw(
        uow, mailbox_id, raw, provider_id=str(stored.id), received_at=stored.created_at
    )


def list_sandbox_messages(
    uow: TenantUnitOfWork,
    mailbox_id: uuid.UUID,
    *,
    direction: str | None,
    after: int,
    limit: int,
    include_raw: bool,
) -> SandboxMessagePage:
    _sandbox_mailbox(uow, mailbox_id)
    return sandbox.list_messages(
        uow, mailbox_id, direction=direction, after=after, limit=limit, include_raw=include_raw
    )


def set_faults(uow: TenantUnitOfWork, mailbox_id: uuid.UUID, plan: FaultPlan) -> FaultPlan:
    _sandbox_mailbox(uow, mailbox_id)
    return sandbox.set_fault_plan(uow, mailbox_id, plan)

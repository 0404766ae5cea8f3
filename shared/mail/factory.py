"""The one place a mailbox's provider picks its Mailbox implementation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from shared.deliverability.orm import Mailbox as MailboxRow
from shared.errors import ASEPError
from shared.mail.port import Mailbox
from shared.mail.sandbox import SandboxMailbox


class MailProviderNotAvailable(ASEPError):
    """The mailbox's provider has no adapter in this build (Gmail and Graph come later)."""

    status = 409
    code = "mail_provider_not_available"
    title = "Mail provider not available"


@dataclass(frozen=True)
class MailboxRef:
    """What picking an implementation needs, read from the `mailboxes` row."""

    id: uuid.UUID
    address: str
    provider: str

    @classmethod
    def of(cls, row: MailboxRow) -> MailboxRef:
        return cls(id=row.id, address=row.address, provider=row.provider)


class MailboxResolver(Protocol):
    def __call__(self, tenant_id: uuid.UUID, mailbox: MailboxRef) -> Mailbox: ...


def mailbox_for(tenant_id: uuid.UUID, mailbox: MailboxRef) -> Mailbox:
    if mailbox.provider == "sandbox":
        return SandboxMailbox(tenant_id, mailbox.id, mailbox.address)
    if mailbox.provider in {"gmail", "graph"}:
        raise MailProviderNotAvailable(
            f"Mailbox {mailbox.address} uses {mailbox.provider}, whose adapter is not part of "
            "this build yet; only sandbox mailboxes can send."
        )
    raise MailProviderNotAvailable(f"Unknown mail provider {mailbox.provider!r}.")

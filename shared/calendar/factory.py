"""The one place a mailbox's provider picks its Calendar implementation."""

from __future__ import annotations

import uuid

from shared.calendar.port import Calendar
from shared.calendar.sandbox import SandboxCalendar
from shared.mail.factory import MailboxRef, MailProviderNotAvailable


def calendar_for(tenant_id: uuid.UUID, mailbox: MailboxRef) -> Calendar:
    if mailbox.provider == "sandbox":
        return SandboxCalendar(tenant_id, mailbox.id)
    raise MailProviderNotAvailable(
        f"Mailbox {mailbox.address} uses {mailbox.provider}, whose calendar adapter is not part "
        "of this build yet; only sandbox calendars are available."
    )

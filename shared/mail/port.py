"""The Mailbox port: what sending and reply ingestion need from a mail provider.

Shaped for the providers behind it:

- Gmail API: `users.messages.send` takes the RFC 5322 bytes (`raw`, base64url) and keeps our
  Message-ID; `users.messages.list q="in:sent rfc822msgid:<id>"` finds a sent message by it;
  `history.list` from a `historyId` lists what arrived.
- Microsoft Graph: `sendMail` accepts MIME (base64 text/plain body) and answers 202 with no
  id; the message shows up in Sent Items later, found with
  `$filter=internetMessageId eq '<id>'`; delta queries list what arrived.
- The sandbox (`shared/mail/sandbox.py`): the embedded default and the test peer.

Errors are typed by what the caller may do next. Only `ProviderThrottled` and
`ProviderRejected` say for certain that nothing was sent; after `ProviderUnavailable` (a 5xx
or a timeout) and `OutcomeUnknown` the provider may have accepted the message, so the sender
reconciles with `find_sent` before any resend (docs/adr/0006-effectively-once-send.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol


@dataclass(frozen=True)
class OutboundEmail:
    """A fully built message. `raw` is sent byte for byte, so a resend is the same message."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]
    raw: bytes
    # Gmail's threadId for a follow-up, when the first touch's receipt gave one.
    provider_thread_id: str | None = None


@dataclass(frozen=True)
class SendReceipt:
    message_id: str
    accepted_at: datetime
    # Gmail returns the message id; Graph's 202 carries none.
    provider_message_id: str | None = None
    provider_thread_id: str | None = None


@dataclass(frozen=True)
class SentRecord:
    """A message found in the provider's sent items."""

    message_id: str
    sent_at: datetime
    provider_message_id: str | None = None
    provider_thread_id: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    provider_id: str
    raw: bytes
    received_at: datetime


@dataclass(frozen=True)
class InboundPage:
    messages: list[InboundMessage]
    # Pass back as `after` to continue (Gmail historyId, Graph deltaLink, sandbox sequence).
    cursor: str | None


class MailProviderError(Exception):
    """`sending` tells these apart by type: which outcome is definite decides what happens."""


class ProviderThrottled(MailProviderError):
    """429 (or Gmail's 403 rateLimitExceeded): not accepted; wait `retry_after` seconds."""

    def __init__(self, retry_after: float, detail: str = "throttled") -> None:
        super().__init__(f"{detail}; retry after {retry_after:g}s")
        self.retry_after = retry_after


class ProviderUnavailable(MailProviderError):
    """5xx or a timeout. The request may still have been processed: reconcile first."""


class ProviderTimeout(ProviderUnavailable):
    pass


class OutcomeUnknown(MailProviderError):
    """The request was written but no answer came back (connection dropped, ambiguous 202)."""


class ProviderRejected(MailProviderError):
    """4xx other than throttling: the provider refused this message; sending it again won't help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Mailbox(Protocol):
    @property
    def address(self) -> str: ...

    @property
    def sent_visibility_seconds(self) -> float:
        """How long an accepted message may stay invisible to `find_sent` (Graph delivers
        asynchronously); reconciling sooner could take "not yet there" for "never sent"."""
        ...

    def send(self, message: OutboundEmail) -> SendReceipt: ...

    def find_sent(self, message_id: str) -> SentRecord | None: ...

    def list_inbound(self, after: str | None, limit: int = 100) -> InboundPage: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class InMemoryMailbox:
    """The test fake. `failures` are raised by the next sends, in order; a failure listed in
    `accept_then_raise` is raised after the message was stored, like a dropped connection."""

    address: str
    sent_visibility_seconds: float = 0.0
    sent: list[OutboundEmail] = field(default_factory=list)
    inbound: list[InboundMessage] = field(default_factory=list)
    failures: list[MailProviderError] = field(default_factory=list)
    accept_then_raise: list[MailProviderError] = field(default_factory=list)

    def send(self, message: OutboundEmail) -> SendReceipt:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)
        if self.accept_then_raise:
            raise self.accept_then_raise.pop(0)
        return SendReceipt(
            message_id=message.message_id,
            accepted_at=utc_now(),
            provider_message_id=f"mem-{len(self.sent)}",
        )

    def find_sent(self, message_id: str) -> SentRecord | None:
        for index, message in enumerate(self.sent, start=1):
            if message.message_id == message_id:
                return SentRecord(message_id, utc_now(), provider_message_id=f"mem-{index}")
        return None

    def list_inbound(self, after: str | None, limit: int = 100) -> InboundPage:
        start = int(after) if after else 0
        page = self.inbound[start : start + limit]
        return InboundPage(page, str(start + len(page)))

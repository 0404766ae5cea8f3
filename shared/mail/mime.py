"""RFC 5322 messages: building what we send and reading what arrives.

Outbound messages carry our own Message-ID (so a resend is recognisably the same message and
reconciling can find it in the provider's sent items), the RFC 8058 one-click unsubscribe
headers, and a footer with the sender's postal address and the unsubscribe link (CAN-SPAM).
Reading never raises: whatever arrives is stored, with the problems found listed.
"""

from __future__ import annotations

import html
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.header import Header, decode_header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, parsedate_to_datetime

from shared.errors import ValidationFailed

ONE_CLICK = "List-Unsubscribe=One-Click"
# CRLF, 7-bit safe bodies (quoted-printable or base64 for non-ASCII), and lines up to RFC 5322's
# hard limit of 998 so a long one-click URL stays on the List-Unsubscribe line instead of
# being folded onto a continuation line that some receivers read with a leading space.
WIRE = policy.SMTP.clone(max_line_length=998, cte_type="7bit")
# RFC 5322 §2.1.1 says 998 octets per line; headers beyond that are refused by some MTAs.
MAX_REFERENCES = 20
MAX_LINE_CHARS = 998
_MESSAGE_ID = re.compile(r"<[^<>\s]+@[^<>\s]+>")


class InvalidMessage(ValidationFailed):
    code = "invalid_message"
    title = "Invalid message"


@dataclass(frozen=True)
class MessageContent:
    subject: str
    text: str
    html: str | None = None


@dataclass(frozen=True)
class Compliance:
    """What every commercial message must carry (RFC 8058, CAN-SPAM)."""

    postal_address: str
    unsubscribe_url: str
    unsubscribe_mailto: str | None = None


@dataclass(frozen=True)
class Thread:
    """The message a follow-up answers, for In-Reply-To and References (RFC 5322 §3.6.4)."""

    in_reply_to: str
    references: tuple[str, ...] = ()

    def reference_chain(self) -> tuple[str, ...]:
        chain = [*self.references, self.in_reply_to]
        # Keep the first (the thread root) and the most recent, as RFC 5322 §3.6.4 suggests.
        if len(chain) > MAX_REFERENCES:
            chain = [chain[0], *chain[-(MAX_REFERENCES - 1) :]]
        return tuple(dict.fromkeys(chain))


def sender_domain(address: str) -> str:
    _, _, domain = address.rpartition("@")
    if not domain:
        raise InvalidMessage(f"{address!r} is not an email address")
    return domain.lower()


def new_message_id(sender: str) -> str:
    return f"<{uuid.uuid4().hex}@{sender_domain(sender)}>"


def _address(email: str, display_name: str | None) -> Address:
    local, _, domain = email.rpartition("@")
    if not local or not domain:
        raise InvalidMessage(f"{email!r} is not an email address")
    try:
        return Address(display_name=display_name or "", username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise InvalidMessage(f"{email!r} is not a usable address: {exc}") from exc


def footer_text(compliance: Compliance) -> str:
    return f"\n\n--\n{compliance.postal_address}\nUnsubscribe: {compliance.unsubscribe_url}\n"


def footer_html(compliance: Compliance) -> str:
    address = html.escape(compliance.postal_address).replace("\n", "<br>")
    url = html.escape(compliance.unsubscribe_url, quote=True)
    return (
        f'<hr><p style="font-size:12px;color:#666">{address}<br><a href="{url}">Unsubscribe</a></p>'
    )


def _with_html_footer(body: str, footer: str) -> str:
    closing = body.lower().rfind("</body>")
    if closing == -1:
        return body + footer
    return body[:closing] + footer + body[closing:]


def build_message(
    *,
    message_id: str,
    date: datetime,
    sender: str,
    recipient: str,
    content: MessageContent,
    compliance: Compliance,
    sender_name: str | None = None,
    recipient_name: str | None = None,
    thread: Thread | None = None,
) -> bytes:
    """The message as it goes on the wire (CRLF line endings, RFC 2047 encoded headers)."""
    if not _MESSAGE_ID.fullmatch(message_id):
        raise InvalidMessage(f"{message_id!r} is not a Message-ID")
    if not compliance.postal_address.strip():
        raise InvalidMessage("the sender's postal address is required in every message")
    if not compliance.unsubscribe_url.startswith("https://") and not (
        compliance.unsubscribe_url.startswith("http://localhost")
        or compliance.unsubscribe_url.startswith("http://127.0.0.1")
    ):
        # RFC 8058 §3.1: the one-click URI must be https; plain http only for a local server.
        raise InvalidMessage("the one-click unsubscribe URL must be https")
    message = EmailMessage(policy=WIRE)
    try:
        message["Message-ID"] = message_id
        message["Date"] = format_datetime(date)
        message["From"] = _address(sender, sender_name)
        message["To"] = _address(recipient, recipient_name)
        message["Subject"] = content.subject
        if thread is not None:
            message["In-Reply-To"] = thread.in_reply_to
            message["References"] = " ".join(thread.reference_chain())
        unsubscribe = f"<{compliance.unsubscribe_url}>"
        if compliance.unsubscribe_mailto:
            unsubscribe += f", <mailto:{compliance.unsubscribe_mailto}>"
        message["List-Unsubscribe"] = unsubscribe
        message["List-Unsubscribe-Post"] = ONE_CLICK
    except ValueError as exc:  # CR/LF in a header value: header injection
        raise InvalidMessage(f"invalid header value: {exc}") from exc
    message.set_content(content.text.rstrip("\n") + footer_text(compliance), subtype="plain")
    if content.html is not None:
        message.add_alternative(
            _with_html_footer(content.html, footer_html(compliance)), subtype="html"
        )
    return message.as_bytes(policy=WIRE)


@dataclass
class ParsedMessage:
    """What inbound handling needs from a message, read defensively."""

    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    sender: str | None = None
    recipients: list[str] = field(default_factory=list)
    subject: str | None = None
    date: datetime | None = None
    content_type: str = "text/plain"
    # Message-IDs of the original messages a delivery report (bounce) is about.
    reported_message_ids: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def message_ids(value: str | None) -> list[str]:
    return _MESSAGE_ID.findall(value or "")


def _usable_ids(message: Message, name: str, problems: list[str]) -> list[str]:
    """The ids in a Message-ID / In-Reply-To / References header that can be one: no longer
    than a header line may be (RFC 5322 §2.1.1). A longer one is junk, and it would not fit
    in a database index either."""
    ids = message_ids(_header(message, name, problems))
    usable = [i for i in ids if len(i) <= MAX_LINE_CHARS]
    if len(usable) < len(ids):
        problems.append(f"{name} longer than {MAX_LINE_CHARS} characters ignored")
    return usable


def _raw_header(message: Message, name: str, problems: list[str]) -> object | None:
    try:
        value: object | None = message.get(name)
    except Exception as exc:  # the email package raises a zoo of errors on bad headers
        problems.append(f"unreadable {name} header: {type(exc).__name__}")
        return None
    return value


def _header(message: Message, name: str, problems: list[str]) -> str | None:
    value = _raw_header(message, name, problems)
    return None if value is None else str(value)


def _reported_ids(message: Message) -> list[str]:
    """Message-IDs inside a multipart/report (RFC 6522) original-message part."""
    found: list[str] = []
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                found.extend(message_ids(str(inner.get("Message-ID", ""))))
        elif content_type == "text/rfc822-headers":
            body = part.get_payload(decode=True)
            if isinstance(body, bytes):
                headers = BytesParser(policy=policy.compat32).parsebytes(body, headersonly=True)
                found.extend(message_ids(str(headers.get("Message-ID", ""))))
    return [i for i in found if len(i) <= MAX_LINE_CHARS]


def storable(text: str) -> str:
    """Text PostgreSQL accepts: no NUL, no lone surrogates (bytes the parser could not decode)."""
    return text.replace("\x00", "").encode("utf-8", errors="replace").decode("utf-8")


def _storable_fields(parsed: ParsedMessage) -> ParsedMessage:
    def clean(value: str | None) -> str | None:
        return None if value is None else storable(value)

    parsed.message_id = clean(parsed.message_id)
    parsed.in_reply_to = clean(parsed.in_reply_to)
    parsed.references = [storable(value) for value in parsed.references]
    parsed.sender = None if parsed.sender is None else storable(parsed.sender)[:320]
    parsed.recipients = [storable(value) for value in parsed.recipients]
    parsed.subject = clean(parsed.subject)
    parsed.content_type = storable(parsed.content_type)[:127]
    parsed.reported_message_ids = [storable(value) for value in parsed.reported_message_ids]
    return parsed


def parse_message(raw: bytes) -> ParsedMessage:
    return _storable_fields(_parse(raw))


def _parse(raw: bytes) -> ParsedMessage:
    parsed = ParsedMessage()
    problems = parsed.problems
    try:
        # compat32 keeps header values as plain strings and defers all decoding, so a broken
        # header is reported once, here, instead of raising later.
        message = BytesParser(policy=policy.compat32).parsebytes(raw)
    except Exception as exc:
        problems.append(f"unparseable message: {type(exc).__name__}")
        return parsed
    problems.extend(f"defect: {type(defect).__name__}" for defect in message.defects[:20])
    ids = _usable_ids(message, "Message-ID", problems)
    parsed.message_id = ids[0] if ids else None
    if parsed.message_id is None:
        problems.append("missing Message-ID")
    reply_ids = _usable_ids(message, "In-Reply-To", problems)
    parsed.in_reply_to = reply_ids[0] if reply_ids else None
    parsed.references = _usable_ids(message, "References", problems)
    senders = getaddresses([_header(message, "From", problems) or ""])
    parsed.sender = next((address.lower() for _, address in senders if "@" in address), None)
    if parsed.sender is None:
        problems.append("missing From")
    parsed.recipients = [
        address.lower()
        for _, address in getaddresses(
            [_header(message, "To", problems) or "", _header(message, "Cc", problems) or ""]
        )
        if "@" in address
    ]
    parsed.subject = _decoded_subject(_raw_header(message, "Subject", problems), problems)
    date = _header(message, "Date", problems)
    if date:
        try:
            parsed.date = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            problems.append("unreadable Date")
    try:
        parsed.content_type = message.get_content_type()
        if parsed.content_type == "multipart/report":
            parsed.reported_message_ids = _reported_ids(message)
    except Exception as exc:
        problems.append(f"unreadable MIME structure: {type(exc).__name__}")
    return parsed


def _chunk_text(chunk: bytes, charset: str | None) -> str:
    if charset and charset.lower() not in {"unknown-8bit", "us-ascii"}:
        try:
            return chunk.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError:
        return chunk.decode("cp1252", "replace")


def header_text(value: object, problems: list[str] | None = None) -> str:
    """A header value as a person reads it: RFC 2047 encoded words decoded, and raw 8-bit
    bytes (RFC 6532 UTF-8 headers, or a client's local charset; compat32 hands those over
    as a Header of charset unknown-8bit) read as UTF-8, else Windows-1252. Never raises."""
    if not isinstance(value, Header):
        value = str(value)
        if "=?" not in value:
            return value
    try:
        chunks = decode_header(value)
    except Exception:
        if problems is not None:
            problems.append("undecodable encoded words in a header")
        return str(value)
    return "".join(
        chunk if isinstance(chunk, str) else _chunk_text(chunk, charset)
        for chunk, charset in chunks
    )


def _decoded_subject(value: object | None, problems: list[str]) -> str | None:
    return None if value is None else header_text(value, problems)[:998]

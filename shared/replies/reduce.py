"""From raw MIME to the reply's new text: the readable body, without quoted history,
forwarded copies or signatures.

Quote stripping starts with `mail-parser-reply` (multilingual quote headers and
signatures) and then cuts at the first quote or forward header it missed: on the 42
fixtures of the npm `email-reply-parser` suite whose expected first fragment is known,
the library alone isolated 23. Nothing here raises on bad input; decoding problems are
listed instead.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesParser

from bs4 import BeautifulSoup
from mailparser_reply import EmailReplyParser

# Languages whose quote headers mail-parser-reply knows and that our customers write in.
REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "sv", "da", "cs", "ja", "zh", "ko"]
MAX_BODY_CHARS = 200_000
MAX_NEW_TEXT_CHARS = 5_000
# Labels that name a single-byte charset, under which valid non-ASCII UTF-8 is a mislabel.
_SINGLE_BYTE = frozenset(
    {"us-ascii", "ascii", "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1"}
    | {"iso-8859-15", "latin-9", "windows-1252", "cp1252", "x-unknown", "unknown-8bit"}
)

# Lines that open a quoted or forwarded copy, in the languages above plus pt, no, fi, ru.
_QUOTE_HEADERS = [
    r"^\s*-*\s*On\b.{0,200}\bwrote:?\s*$",
    r"^\s*Le\b.{0,200}\bécrit\s*:?\s*$",
    r"^\s*El\b.{0,200}\bescribió:?\s*$",
    r"^\s*(Il|In data)\b.{0,200}\bscritto:?\s*$",
    r"^\s*Em\b.{0,200}\bescreveu:?\s*$",
    r"^\s*Am\b.{0,200}\bschrieb\b.{0,200}:\s*$",
    r"^\s*Op\b.{0,200}\bschreef\b.{0,200}:\s*$",
    r"^\s*(W dniu|Dnia)\b.{0,200}\b(pisze|napisał(\(a\))?):\s*$",
    r"^\s*Den\b.{0,200}\bskrev\b.{0,200}:\s*$",
    r"^.{0,80}\b\d{1,2}\.? .{0,80}\bskrev\b.{0,200}:\s*$",
    r"^.{0,200}\bkirjoitti:\s*$",
    r"^.{0,200}\b\u043f\u0438\u0441\u0430\u043b\(?\u0430?\)?:\s*$",  # Russian "wrote"
    r"^\s*在.{0,200}写道[:\uff1a]\s*$",
    r"^.{0,200}작성:\s*$",
    r"^.{0,200}のメッセージ:\s*$",
    r"^.{0,200}<[^>]+@[^>]+>\s*(wrote|schrieb|a écrit|escribió|skrev):?\s*$",
    r"^\s*20\d\d[-/.]\d\d[-/.]\d\d.{0,120}<[^>]+>:?\s*$",
    r"^.{0,200}\b(19|20)\d\d\b.{0,200}<[^>]+@[^>]+>\)?:\s*$",
    r"^\s*\*?(From|Von|De|Van|Da|Från|Fra|Od|Lähettäjä|От)\s*:\*?\s.{0,200}(@|\[mailto:|<).*$",
    r"^\s*-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original|"
    r"Messaggio originale|Oorspronkelijk bericht|Oprindelig besked|Originalmeddelande|"
    r"Mensagem original|Opprinnelig melding)\s*-{2,}\s*$",
    r"^\s*-{2,}\s*(Forwarded message|Weitergeleitete Nachricht|Message transféré|"
    r"Mensaje reenviado|Messaggio inoltrato|Doorgestuurd bericht|Videresendt meddelelse|"
    r"Vidarebefordrat meddelande|Mensagem encaminhada)\s*-{2,}\s*$",
    r"^\s*Begin forwarded message:\s*$",
    r"^\s*_{10,}\s*$",
]
_QUOTE_HEADER = re.compile("|".join(f"(?:{p})" for p in _QUOTE_HEADERS), re.IGNORECASE)
_HEADER_START = re.compile(
    r"^\s*(On|Le|El|Il|In data|Em|Am|Op|W dniu|Dnia|Den|From|Von|De|Van|Da|\d)\b", re.IGNORECASE
)
_SIGNATURE_LINES = re.compile(
    r"^\s*(--\s*|Sent from my .{1,40}|Sent from (Outlook|Mail|Yahoo Mail).{0,60}|"
    r"Get Outlook for .{1,30}|Von meinem .{1,40} gesendet|Gesendet von .{1,60}|"
    r"Envoyé de mon .{1,40}|Envoyé depuis .{1,60}|Enviado desde mi .{1,40}|"
    r"Enviado desde .{1,60}|Inviato da .{1,60}|Verzonden (vanaf|met) .{1,60}|"
    r"Verstuurd vanaf .{1,60}|Skickat från .{1,60}|Sendt fra .{1,60})\s*$",
    re.IGNORECASE,
)


@dataclass
class MessageText:
    """The readable content of a message and what went wrong reading it."""

    message: Message | None
    body: str = ""
    html_only: bool = False
    problems: list[str] = field(default_factory=list)


def parse(raw: bytes) -> Message | None:
    try:
        # compat32 defers header decoding, so one broken header cannot stop the whole read.
        return BytesParser(policy=policy.compat32).parsebytes(raw)
    except Exception:
        return None


def _utf8(payload: bytes) -> str | None:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def decode_text(payload: bytes, declared: str | None, problems: list[str]) -> str:
    """`payload` as text, trusting the declared charset only as far as the bytes agree.

    Mislabelled charsets are common in replies: UTF-8 sent as Latin-1 or ASCII (which
    would read "nächste" as "nÃ¤chste"), Windows-1252 sent as UTF-8, ASCII sent as UTF-16.
    Bytes that are valid UTF-8 and not plain ASCII are UTF-8 whatever the label says: text
    in a single-byte charset almost never forms valid multi-byte sequences."""
    charset = (declared or "utf-8").strip().strip('"').lower()
    as_utf8 = _utf8(payload)
    wide = charset.replace("-", "").replace("_", "").startswith(("utf16", "utf32", "ucs"))
    mislabelled = (not payload.isascii() and charset in _SINGLE_BYTE) or (
        wide and b"\0" not in payload
    )
    if as_utf8 is not None and mislabelled:
        problems.append(f"wrong charset {charset[:40]!r}: the bytes are UTF-8")
        return as_utf8
    try:
        return payload.decode(charset)
    except UnicodeDecodeError:
        problems.append(f"wrong charset {charset[:40]!r}: undecodable bytes")
    except (LookupError, ValueError):  # ValueError: a name no codec lookup accepts (a NUL)
        problems.append(f"unknown charset {charset[:40]!r}")
    if as_utf8 is not None:
        return as_utf8
    # Windows-1252 is what mislabelled Western mail nearly always is; it leaves five bytes
    # undefined, which Latin-1 (defined everywhere) takes care of.
    try:
        return payload.decode("cp1252")
    except UnicodeDecodeError:
        return payload.decode("latin-1")


def decode_part(part: Message, problems: list[str]) -> str:
    """A text part's payload as str, whatever its declared transfer encoding or charset."""
    try:
        payload = part.get_payload(decode=True)
    except Exception as exc:
        problems.append(f"undecodable payload: {type(exc).__name__}")
        return ""
    if not isinstance(payload, bytes):
        return ""
    try:
        declared = part.get_content_charset()
    except Exception:  # a malformed Content-Type parameter
        declared = None
    return decode_text(payload, declared, problems)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML body, without the quoted history mail clients wrap in
    blockquote / gmail_quote / Outlook's reply header block."""
    soup = BeautifulSoup(markup, "html.parser")
    for element in soup(["script", "style", "head", "title"]):
        element.decompose()
    for element in soup.select("div#divRplyFwdMsg, div#appendonsend"):
        # Outlook puts the reply header here and the quoted message in the siblings after it.
        for sibling in list(element.find_next_siblings()):
            sibling.decompose()
        element.decompose()
    for element in soup.select("blockquote, div.gmail_quote, div.yahoo_quoted"):
        if element.attrs is not None:  # already gone with an enclosing quote
            element.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for block in soup.find_all(["p", "div", "li", "tr", "h1", "h2", "h3"]):
        block.insert_after("\n")
    text = soup.get_text()
    lines = [re.sub(r"[ \t\xa0]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def message_text(raw: bytes) -> MessageText:
    """The first text/plain part outside attachments and report parts, else the first
    text/html part converted to text."""
    message = parse(raw)
    result = MessageText(message=message)
    if message is None:
        result.problems.append("unparseable message")
        result.body = raw[:MAX_BODY_CHARS].decode("utf-8", errors="replace")
        return result
    plain: str | None = None
    markup: str | None = None
    try:
        parts = list(message.walk())
    except Exception as exc:
        result.problems.append(f"unreadable MIME structure: {type(exc).__name__}")
        parts = [message]
    for part in parts:
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        disposition = str(part.get("Content-Disposition") or "").lower()
        if "attachment" in disposition:
            continue
        if content_type == "text/plain" and plain is None:
            plain = decode_part(part, result.problems)
        elif content_type == "text/html" and markup is None:
            markup = decode_part(part, result.problems)
    boundless = message.get_content_maintype() == "multipart" and not message.is_multipart()
    if plain is None and markup is None and boundless:
        # A multipart type without a usable boundary: the parser kept the body whole.
        result.problems.append("multipart without a boundary: read as text")
        plain = decode_part(message, result.problems)
    if plain is not None and plain.strip():
        result.body = plain
    elif markup is not None:
        result.html_only = True
        try:
            result.body = html_to_text(markup[:MAX_BODY_CHARS])
        except Exception as exc:
            result.problems.append(f"unreadable HTML: {type(exc).__name__}")
            result.body = re.sub(r"<[^>]+>", " ", markup)
    result.body = result.body[:MAX_BODY_CHARS].replace("\r\n", "\n").replace("\r", "\n")
    return result


def unreadable_share(text: str) -> float:
    """The share of characters no person wrote: replacement characters (bytes that did not
    decode), control characters and private-use code points (bytes decoded with the wrong
    charset). Whitespace does not count either way."""
    visible = [c for c in text if not c.isspace()]
    if not visible:
        return 0.0
    bad = sum(1 for c in visible if c == "\ufffd" or unicodedata.category(c) in {"Cc", "Co", "Cs"})
    return bad / len(visible)


def _cut_at_quote(text: str) -> str:
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.lstrip().startswith(">"):
            return "\n".join(lines[:index])
        # Clients wrap long headers ("Em 10 de julho ..., John (\ncontact@x) escreveu:").
        for span in (1, 2, 3):
            if span > 1 and not _HEADER_START.match(line):
                break
            joined = " ".join(part.strip() for part in lines[index : index + span])
            if _QUOTE_HEADER.match(joined):
                return "\n".join(lines[:index])
    return text


def _cut_signature(text: str) -> str:
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if index > 0 and _SIGNATURE_LINES.match(line):
            return "\n".join(lines[:index])
    return text


def new_text(body: str) -> str:
    """The part of `body` the sender wrote now."""
    body = unicodedata.normalize("NFC", body.replace("\r\n", "\n"))
    try:
        reply = EmailReplyParser(languages=REPLY_LANGUAGES).parse_reply(text=body)
    except Exception:  # the library's regexes on adversarial input: fall back to ours alone
        reply = body
    candidates = [_cut_signature(_cut_at_quote(reply)), _cut_signature(_cut_at_quote(body))]
    non_empty = [c.strip() for c in candidates if c.strip()]
    if not non_empty:
        # All of it looked quoted (a bare forward): the unquoted lines are the best we have.
        unquoted = [ln for ln in body.split("\n") if not ln.lstrip().startswith(">")]
        return "\n".join(unquoted).strip()[:MAX_NEW_TEXT_CHARS]
    return min(non_empty, key=len)[:MAX_NEW_TEXT_CHARS]

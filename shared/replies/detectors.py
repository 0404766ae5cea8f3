"""Deterministic detectors: machine-generated mail is recognised by its structure, before any
model reads it.

- Delivery reports (RFC 3464 `multipart/report; report-type=delivery-status`), and the many
  MTAs that send a plain-text bounce instead; `flufl.bounce` extracts addresses from the
  MTA formats it knows, our own parsing reads the status codes.
- Complaint feedback reports (ARF, RFC 5965 `report-type=feedback-report`).
- Auto-replies (RFC 3834 `Auto-Submitted`, `X-Autoreply`, `Precedence`) and out-of-office
  wording in the languages we sell in.
- Explicit unsubscribe requests.

Hard vs soft bounce follows what the bounce says about the *address*: hard means it does not
exist or no longer accepts mail (unknown user or host, moved, null MX: suppress for good);
everything else is soft, including permanent 5.x.x refusals for policy, reputation or
content, which say nothing about the address and count toward the mailbox's health instead.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import parseaddr

from flufl.bounce import all_failures

from shared.mail.mime import header_text
from shared.replies.schemas import ReplyLabel

# flufl.bounce logs every detector it tries at INFO, and a traceback at ERROR for each of its
# heuristics that trips over a malformed message it then skips: noise, not failures.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)
log = logging.getLogger(__name__)

# Set by hand, not fitted. DSN and ARF are at or below the bounce and complaint precision
# on sisimai (bench/classify_corpus.py); the auto-reply one is above the out-of-office
# precision measured there (0.625: bounces and complaints sent with Auto-Submitted), and the
# unsubscribe and text ones are unmeasured. The text-only ones are set below their
# structural counterparts because wording can be quoted or paraphrased by a person.
DSN_CONFIDENCE = 0.99
ARF_CONFIDENCE = 0.99
TEXT_BOUNCE_CONFIDENCE = 0.95
AUTO_REPLY_OOO_CONFIDENCE = 0.97
AUTO_REPLY_OTHER_CONFIDENCE = 0.85
OOO_TEXT_CONFIDENCE = 0.9
UNSUBSCRIBE_CONFIDENCE = 0.96

HARD = "hard"
SOFT = "soft"
# An address that should be wrapped in <> but is not: bounces write both.
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_REPLY_CODE = re.compile(r"(?<![\d.])([45]\d\d)(?=[\s-])")

# RFC 3463 subjects that say the address itself is bad: 1.1 bad mailbox, 1.2 bad system,
# 1.3 bad syntax, 1.6 moved, 1.10 null MX (RFC 7505).
_HARD_STATUSES = {(1, 1), (1, 2), (1, 3), (1, 6), (1, 10)}
_HARD_TEXT = re.compile(
    r"user ?unknown|unknown (user|recipient|mailbox|address|local.?part)|no such "
    r"(user|mailbox|recipient|account|address|person)|(user|mailbox|recipient|address|account)"
    r" (does not|doesn.t|did not) exist|(mailbox|recipient|user|account) (not found|unknown|"
    r"is unknown)|invalid (recipient|mailbox|address|user)|not a valid (mailbox|recipient|user)"
    r"|address (rejected|unknown|not found)|unrouteable address|host (or domain name )?not "
    r"found|domain (not found|does not exist)|no (mx|mail exchanger) |name service error|"
    r"host unknown|unknown host|unknown domain|nxdomain|no longer (with|at|employed|active)|"
    r"has moved|does not accept (any )?mail|null mx|not our customer|no mailbox here|"
    r"undeliverable address|recipient not recognized|destination (mailbox )?address invalid|"
    r"unknown or illegal alias|mailbox unavailable|account has been deleted|"
    r"this user doesn.t have a|the email account that you tried to reach does not exist",
    re.IGNORECASE,
)
_SOFT_TEXT = re.compile(
    r"mailbox (is )?full|over ?quota|quota exceeded|exceeded (the )?storage|insufficient "
    r"(system )?storage|temporar|try again later|greylist|rate limit|too many|deferred|"
    r"spam|blocked|blacklist|blocklist|policy|reputation|not authorized|authentication|"
    r"spf|dkim|dmarc|relay|timed? ?out|expired|disabled|suspended|inactive",
    re.IGNORECASE,
)

_BOUNCE_SENDER = re.compile(
    r"^(mailer[-_]?daemon|postmaster|mail[-_]?daemon|mail delivery (system|subsystem)|"
    r"bounces?|nobody|mdaemon|mailadmin|returned)\b",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (status notification|failure|failed|report|problem|"
    r"notification)|returned mail|mail delivery (failed|failure|system)|failure notice|"
    r"non[- ]?delivery|nondeliverable|could not be delivered|delivery has failed|"
    r"message not delivered|mail could not be delivered|rejected|returned to sender|"
    r"unzustellbar|non remis|no se puede entregar|warning: could not send|"
    r"delayed mail|delivery delayed|mail system error|permanent failure|bounce",
    re.IGNORECASE,
)
_BOUNCE_BODY = re.compile(
    r"could not be delivered|couldn.t be delivered|was not delivered|wasn.t delivered|"
    r"delivery (to the following recipients? )?(has )?failed|undeliverable|permanent "
    r"(error|failure|fatal)|fatal errors?|returned mail|failed to deliver|unable to deliver|"
    r"the following addresses? (had|failed)|delivery status notification|message (could not|"
    r"couldn.t) be sent|not be delivered|delivery (is )?delayed|could not deliver|"
    r"i.m sorry to have to inform you|this is the mail system at host|non[- ]?delivery|"
    r"delivery to .{1,80} failed|error (occurred|encountered) while delivering|"
    r"i.m afraid i wasn.t able to deliver|the following message to .{1,80} was undeliverable|"
    r"your message (did not|didn.t) reach|message delivery failure|smtp error|"
    r"remote (host|server) (said|replied|returned)|sorry, no mailbox here|"
    r"has not yet been delivered|exceeded the (max|maximum)|retry time not reached|"
    r"the recipient server did not accept|this is the mailer-daemon|"
    r"送信できませんでした|配信できませんでした|届きませんでした|送信に失敗しました",
    re.IGNORECASE,
)
_ORIGINAL_COPY = re.compile(
    r"^(-{2,}.{0,10}(original message|copy of the message|undelivered message|"
    r"message headers? follow|returned message)|.{0,20}below this line is a copy|"
    r"content-type: message/rfc822|return-path:)",
    re.IGNORECASE | re.MULTILINE,
)

_OOO_TEXT = re.compile(
    r"out of (the )?office|out-of-office|on (annual |parental |maternity |paternity |sick )?"
    r"(leave|vacation|holiday)|away from (the office|my desk|email|work)|i am (currently )?away"
    r"|i.m (currently )?away|(currently|presently) (out|away|travell?ing|on leave)|limited "
    r"access to (my )?e-?mail|will (be )?(back|return(ing)?) (on|in|to the office|after)|"
    r"return(ing)? to the office|back in the office|automatic reply|auto(matic)?[- ]?reply|"
    r"abwesenheit|nicht im büro|außer haus|bin (ab|bis) .{0,40}(wieder|zurück)|urlaub|"
    r"bin ich (wieder )?erreichbar|absente? (du bureau|jusqu)|en congé|en vacances|"
    r"réponse automatique|de retour le|fuera de la oficina|de vacaciones|respuesta "
    r"automática|estaré (fuera|de vuelta)|fuori (sede|ufficio)|in ferie|risposta automatica|"
    r"afwezig|niet op kantoor|met vakantie|automatisch antwoord|frånvarande|på semester|"
    r"fraværende|på ferie|automatisch(e)? (antwort|nachricht)|poza biurem|na urlopie|"
    r"ausente|de férias|fora do escritório",
    re.IGNORECASE,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort|réponse|respuesta|risposta)|"
    r"out of (the )?office|abwesen(d|heit)|absence|automatische antwort|réponse automatique|"
    r"respuesta automática|fuori ufficio|afwezig|frånvaro)|\b(autoreply|auto-reply|"
    r"out of office|ooo)\b",
    re.IGNORECASE,
)
_UNSUBSCRIBE = re.compile(
    r"\bunsubscribe\b|\bremove me\b|remove (my (e-?mail|address|name)|us) from|take me off|"
    r"take (my (e-?mail|address|name)|us) off|(stop|quit|cease) (e-?mailing|contacting|"
    r"sending|writing)|don.t (e-?mail|contact|write to) me|do not (e-?mail|contact|write to) "
    r"(me|us)|opt(ed)?[- ]?(me )?out|no (more|further) (e-?mails|emails|messages|contact)|"
    r"never (e-?mail|contact) (me|us) again|(delete|erase) my (data|details|address)|"
    r"abmelden|austragen|tragen sie (mich|uns) .{0,40}aus\b|"
    r"keine (weiteren )?(e-?mails|nachrichten|werbung)|kontaktieren sie mich"
    r" nicht|streichen sie mich|désabonn|désinscri|retirez(-moi| mon)|ne plus (me )?(contacter|"
    r"recevoir)|darme de baja|dar de baja|no me (contacte|escriba)|elimin(ar|en) mi|"
    r"cancella(re)? (la )?(mia|iscrizione)|non contattatemi|rimuov(ete|ere)|uitschrijven|"
    r"afmelden|verwijder mij|stuur (me )?geen|avregistrera|avsluta prenumeration|"
    r"ta bort mig|afmeld mig|wypisz|descadastr|remova meu|não me (contate|envie)",
    re.IGNORECASE,
)
# "Don't unsubscribe me" or "how do I unsubscribe my colleague" are rare; what is common is
# a request that also mentions something else, so the request must dominate a short text.
UNSUBSCRIBE_MAX_WORDS = 45
_AUTO_SUBMITTED_OFF = {"", "no"}


@dataclass(frozen=True)
class Detection:
    label: ReplyLabel
    sub_label: str | None
    confidence: float
    detector: str
    signals: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    status_codes: list[str] = field(default_factory=list)


def _header(message: Message, name: str) -> str:
    try:
        value = message.get(name)
    except Exception:
        return ""
    # Decoded: auto-replies in most languages have non-ASCII, hence encoded, subjects.
    return "" if value is None else header_text(value).strip()


def _content_type(message: Message) -> tuple[str, str]:
    try:
        return message.get_content_type(), str(message.get_param("report-type") or "").lower()
    except Exception:
        return "text/plain", ""


def _parts(message: Message) -> list[Message]:
    try:
        return list(message.walk())
    except Exception:
        return [message]


def _payload_text(part: Message) -> str:
    """A part's content as text: report parts are often left undecoded or nested."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if isinstance(payload, bytes):
        return payload.decode("utf-8", errors="replace")
    raw = part.get_payload()
    if isinstance(raw, list):
        return "\n\n".join(_flatten(m) for m in raw if isinstance(m, Message))
    return str(raw or "")


def _flatten(message: Message) -> str:
    try:
        return message.as_string()
    except Exception:  # the generator refuses some malformed headers (an embedded newline)
        return "\n".join(f"{name}: {value}" for name, value in message.items())


def _field_blocks(text: str) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report body
    (RFC 3464 §2.1: per-message fields, then one block per recipient)."""
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip())
    return [HeaderParser(policy=compat32).parsestr(block.strip() + "\n") for block in blocks]


def _addresses(value: str) -> list[str]:
    if ";" in value:  # "rfc822; user@example.com" (RFC 3464 address-type prefix)
        value = value.split(";", 1)[1]
    return [a.lower() for a in _ADDRESS.findall(value)]


def _is_hard(status: str | None, text: str) -> bool:
    """Whether a failure says the address is dead, from its status code and then its wording
    (only when the code is missing or as vague as 5.0.0)."""
    match = _STATUS.search(status or "")
    if match:
        klass, subject, detail = (int(g) for g in match.groups())
        if klass != 5:
            return False
        if (subject, detail) in _HARD_STATUSES or (subject, detail) == (4, 4):
            # 5.1.1 is also sent for a full or disabled mailbox by some MTAs.
            return not _SOFT_TEXT.search(text) or bool(_HARD_TEXT.search(text))
        if (subject, detail) not in {(0, 0), (5, 0)}:
            return False
    return bool(_HARD_TEXT.search(text)) and not _SOFT_TEXT.search(text)


def _status_codes(text: str) -> list[str]:
    return list(dict.fromkeys(".".join(m) for m in _STATUS.findall(text)))[:10]


def _flufl_addresses(message: Message) -> tuple[list[str], list[str]]:
    try:
        permanent, temporary = all_failures(message)
    except Exception:  # its heuristics are not hardened against malformed input
        return [], []

    def decode(values: frozenset[bytes]) -> list[str]:
        return sorted(v.decode("utf-8", errors="replace").lower() for v in values)[:20]

    return decode(permanent), decode(temporary)


def detect_arf(message: Message) -> Detection | None:
    """A complaint feedback report (RFC 5965), or an ISP's non-standard abuse report."""
    content_type, report_type = _content_type(message)
    parts = _parts(message)
    report = next(
        (p for p in parts if p.get_content_type() == "message/feedback-report"),
        None,
    )
    if report_type != "feedback-report" and report is None:
        subject = _header(message, "Subject").lower()
        feedback_header = _header(message, "X-Feedback-Type") or _header(message, "Feedback-Type")
        if not feedback_header and not re.search(r"\b(abuse|complaint|spam) report\b", subject):
            return None
        return Detection(
            ReplyLabel.COMPLAINT,
            (feedback_header or "abuse").lower()[:64],
            ARF_CONFIDENCE - 0.04,
            "arf",
            signals=[f"subject:{subject[:80]}", f"feedback-type:{feedback_header or '-'}"],
        )
    feedback_type = "abuse"
    addresses: list[str] = []
    if report is not None:
        for block in _field_blocks(_payload_text(report)):
            feedback_type = (_header(block, "Feedback-Type") or feedback_type).lower()
            addresses += _addresses(_header(block, "Original-Rcpt-To"))
            addresses += _addresses(_header(block, "Removal-Recipient"))
    return Detection(
        ReplyLabel.COMPLAINT,
        feedback_type[:64],
        ARF_CONFIDENCE,
        "arf",
        signals=[f"content-type:{content_type}; report-type={report_type}"],
        addresses=list(dict.fromkeys(addresses)),
    )


def detect_dsn(message: Message) -> Detection | None:
    """An RFC 3464 delivery status notification: per-recipient Action and Status."""
    status_part = next(
        (
            p
            for p in _parts(message)
            if p.get_content_type() in {"message/delivery-status", "message/global-delivery-status"}
        ),
        None,
    )
    if status_part is None:
        return None
    failed, delayed, delivered = [], [], []
    statuses: list[str] = []
    diagnostics: list[str] = []
    for block in _field_blocks(_payload_text(status_part)):
        recipient = _addresses(
            _header(block, "Final-Recipient") or _header(block, "Original-Recipient")
        )
        action = _header(block, "Action").lower()
        status = _header(block, "Status")
        diagnostic = _header(block, "Diagnostic-Code")
        if not (recipient or action or status):
            continue
        if status:
            statuses.append(status.split()[0][:20])
        diagnostics.append(diagnostic)
        if action.startswith("failed") or (not action and status.startswith("5")):
            failed.append((recipient, status, diagnostic))
        elif action.startswith("delayed") or (not action and status.startswith("4")):
            delayed.append((recipient, status, diagnostic))
        elif action.startswith(("delivered", "deliverable", "relayed", "expanded")) or (
            status.startswith("2")
        ):
            delivered.append((recipient, status, diagnostic))
        else:
            failed.append((recipient, status, diagnostic))
    body = _bounce_explanation(message)
    signals = [f"dsn:{len(failed)} failed, {len(delayed)} delayed, {len(delivered)} delivered"]
    if not failed and not delayed and delivered:
        return Detection(
            ReplyLabel.NEUTRAL,
            "delivery_report",
            DSN_CONFIDENCE,
            "dsn",
            signals=signals,
            addresses=[a for r, _, _ in delivered for a in r],
            status_codes=statuses,
        )
    chosen = failed or delayed
    if not chosen:
        return None
    hard = any(_is_hard(status, f"{diagnostic}\n{body}") for _, status, diagnostic in failed)
    addresses = [a for r, _, _ in chosen for a in r]
    if not addresses:
        permanent, temporary = _flufl_addresses(message)
        addresses = permanent + temporary
    if not statuses:
        statuses = _status_codes("\n".join(diagnostics) + "\n" + body)
    return Detection(
        ReplyLabel.BOUNCE,
        HARD if hard else SOFT,
        DSN_CONFIDENCE,
        "dsn",
        signals=[*signals, *(f"diagnostic:{d[:120]}" for d in diagnostics[:2] if d)],
        addresses=list(dict.fromkeys(addresses))[:20],
        status_codes=list(dict.fromkeys(statuses))[:10],
    )


def _bounce_explanation(message: Message) -> str:
    """The human-readable part of a bounce, without the returned copy of our message."""
    texts: list[str] = []
    for part in _parts(message):
        if part.get_content_type() in {"message/rfc822", "text/rfc822-headers"}:
            break
        if (part.get_content_maintype() == "text" or part is message) and not part.is_multipart():
            texts.append(_payload_text(part))
    text = "\n".join(texts)[:50_000]
    cut = _ORIGINAL_COPY.search(text, 40)
    return text[: cut.start()] if cut else text


def detect_ses_notification(message: Message) -> Detection | None:
    """Amazon SES notifications delivered by email (SNS email subscriptions): JSON with
    notificationType Bounce / Complaint / Delivery."""
    text = _bounce_explanation(message)
    found = re.search(r'\{\s*"notificationType"', text)
    if found is None:
        return None
    start = found.start()
    try:
        notice, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    if not isinstance(notice, dict):
        return None
    kind = str(notice.get("notificationType", ""))
    signals = [f"ses:{kind}"]
    if kind == "Bounce":
        bounce = notice.get("bounce") or {}
        recipients = bounce.get("bouncedRecipients") or []
        addresses = [str(r.get("emailAddress", "")).lower() for r in recipients]
        statuses = [str(r.get("status", "")) for r in recipients if r.get("status")]
        diagnostic = " ".join(str(r.get("diagnosticCode", "")) for r in recipients)
        candidates: list[str | None] = [*statuses] or [None]
        hard = bounce.get("bounceType") == "Permanent" and any(
            _is_hard(status, diagnostic) for status in candidates
        )
        return Detection(
            ReplyLabel.BOUNCE,
            HARD if hard else SOFT,
            DSN_CONFIDENCE,
            "ses",
            signals=[*signals, f"bounceType:{bounce.get('bounceType')}"],
            addresses=[a for a in addresses if a],
            status_codes=statuses,
        )
    if kind == "Complaint":
        complaint = notice.get("complaint") or {}
        recipients = complaint.get("complainedRecipients") or []
        return Detection(
            ReplyLabel.COMPLAINT,
            str(complaint.get("complaintFeedbackType") or "abuse")[:64],
            ARF_CONFIDENCE,
            "ses",
            signals=signals,
            addresses=[str(r.get("emailAddress", "")).lower() for r in recipients],
        )
    if kind == "Delivery":
        return Detection(ReplyLabel.NEUTRAL, "delivery_report", DSN_CONFIDENCE, "ses", signals)
    return None


def detect_text_bounce(message: Message) -> Detection | None:
    """The non-standard bounces many MTAs still send: who sent it, what it says, and codes."""
    sender = _header(message, "From")
    name, address = parseaddr(sender)
    sender_is_daemon = bool(
        _BOUNCE_SENDER.match(address.split("@")[0]) or _BOUNCE_SENDER.match(name or "-")
    )
    subject = _header(message, "Subject")
    explanation = _bounce_explanation(message)
    failed_header = _header(message, "X-Failed-Recipients")
    permanent, temporary = _flufl_addresses(message)
    signals: list[str] = []
    if sender_is_daemon:
        signals.append(f"sender:{address or name}"[:120])
    if _BOUNCE_SUBJECT.search(subject):
        signals.append(f"subject:{subject[:80]}")
    body_match = _BOUNCE_BODY.search(explanation)
    if body_match:
        signals.append(f"body:{body_match.group(0)[:80]}")
    if failed_header:
        signals.append("x-failed-recipients")
    if permanent or temporary:
        signals.append("flufl.bounce")
    codes = _status_codes(explanation)
    reply_codes = list(dict.fromkeys(_REPLY_CODE.findall(explanation)))[:5]
    structural = sender_is_daemon or bool(failed_header) or bool(permanent or temporary)
    wording = bool(body_match) or _BOUNCE_SUBJECT.search(subject) is not None
    auto_submitted = _header(message, "Auto-Submitted").lower() not in _AUTO_SUBMITTED_OFF
    corroborated = bool(codes or reply_codes or auto_submitted or _BOUNCE_SUBJECT.search(subject))
    if not ((structural and (wording or codes or reply_codes)) or (body_match and corroborated)):
        return None
    addresses = permanent + temporary + _addresses(failed_header)
    if not addresses:
        own = parseaddr(_header(message, "To"))[1].lower()
        addresses = [a for a in _addresses(explanation) if a != own][:5]
    status = codes[0] if codes else None
    if status is None and reply_codes:
        status = f"{reply_codes[0][0]}.0.0"
    hard = _is_hard(status, explanation)
    return Detection(
        ReplyLabel.BOUNCE,
        HARD if hard else SOFT,
        TEXT_BOUNCE_CONFIDENCE,
        "bounce_text",
        signals=signals,
        addresses=list(dict.fromkeys(addresses))[:20],
        status_codes=codes or [f"smtp:{c}" for c in reply_codes],
    )


def detect_auto_reply(message: Message, text: str) -> Detection | None:
    """RFC 3834 auto-replies and the vendor headers that mean the same; out-of-office when the
    wording says so."""
    auto_submitted = _header(message, "Auto-Submitted").lower()
    precedence = _header(message, "Precedence").lower()
    signals: list[str] = []
    if auto_submitted.split(";")[0].strip() not in _AUTO_SUBMITTED_OFF:
        signals.append(f"auto-submitted:{auto_submitted[:40]}")
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply", "X-Autoresponder"):
        if _header(message, name):
            signals.append(f"{name.lower()}")
    if precedence in {"auto_reply", "bulk", "junk", "list"}:
        signals.append(f"precedence:{precedence}")
    if _header(message, "X-MS-Exchange-Inbox-Rules-Loop") or _header(message, "X-Loop"):
        signals.append("loop-header")
    subject = _header(message, "Subject")
    if _AUTO_SUBJECT.search(subject):
        signals.append(f"subject:{subject[:80]}")
    if _UNSUBSCRIBE.search(text) and not _OOO_TEXT.search(text):
        # A client's automatic unsubscribe request (Apple Mail's) is a request, not an absence.
        return None
    ooo = _OOO_TEXT.search(text) or _OOO_TEXT.search(subject)
    header_signal = any(not s.startswith("subject:") for s in signals)
    if not header_signal and not (signals and ooo):
        return None
    if ooo:
        signals.append(f"text:{ooo.group(0)[:60]}")
        return Detection(
            ReplyLabel.OOO, "out_of_office", AUTO_REPLY_OOO_CONFIDENCE, "rfc3834", signals
        )
    if precedence in {"bulk", "list"} and not auto_submitted:
        # Newsletters and list traffic carry Precedence: bulk without being a reply to us.
        return None
    return Detection(ReplyLabel.OOO, "auto_reply", AUTO_REPLY_OTHER_CONFIDENCE, "rfc3834", signals)


def detect_ooo_text(text: str, subject: str) -> Detection | None:
    """Out-of-office wording without the headers (clients that omit RFC 3834)."""
    head = text[:600]
    match = _OOO_TEXT.search(head)
    if match is None:
        return None
    return_date = re.search(
        r"\b(until|till|back|return|zurück|bis|jusqu|retour|hasta|vuelta|fino|tot|till|"
        r"tilbage|tillbaka)\b",
        head,
        re.IGNORECASE,
    )
    if return_date is None and not _AUTO_SUBJECT.search(subject):
        return None
    return Detection(
        ReplyLabel.OOO,
        "out_of_office",
        OOO_TEXT_CONFIDENCE,
        "ooo_text",
        signals=[
            f"text:{match.group(0)[:60]}",
            f"return:{return_date.group(0) if return_date else '-'}",
        ],
    )


def detect_unsubscribe(text: str, subject: str) -> Detection | None:
    """An explicit request to stop: always honoured, whatever else the message says."""
    words = len(text.split())
    match = _UNSUBSCRIBE.search(text)
    if match is not None and words <= UNSUBSCRIBE_MAX_WORDS:
        return Detection(
            ReplyLabel.UNSUBSCRIBE,
            None,
            UNSUBSCRIBE_CONFIDENCE,
            "unsubscribe",
            signals=[f"text:{match.group(0)[:60]}"],
        )
    if words <= 3 and re.fullmatch(r"\s*(re:\s*)?(unsubscribe|remove|stop)\s*", subject, re.I):
        return Detection(
            ReplyLabel.UNSUBSCRIBE,
            None,
            UNSUBSCRIBE_CONFIDENCE,
            "unsubscribe",
            signals=[f"subject:{subject[:40]}"],
        )
    return None


def looks_automated(message: Message) -> bool:
    """Mail from a delivery system or any auto-responder: the model must never call it a
    human's interest."""
    _, address = parseaddr(_header(message, "From"))
    content_type, _ = _content_type(message)
    auto_submitted = _header(message, "Auto-Submitted").lower() not in _AUTO_SUBMITTED_OFF
    return (
        content_type == "multipart/report"
        or auto_submitted
        or bool(_BOUNCE_SENDER.match(address.split("@")[0]))
        or bool(_BOUNCE_BODY.search(_bounce_explanation(message)[:5000]))
    )


def detect_machine(message: Message, text: str) -> Detection | None:
    """The structural detectors, most authoritative first."""
    for detector in (detect_arf, detect_dsn, detect_ses_notification, detect_text_bounce):
        try:
            found = detector(message)
        except Exception:  # one detector tripping over a malformed message must not hide
            log.warning("%s failed on a malformed message", detector.__name__, exc_info=True)
            continue  # what the others (or the model) make of it
        if found is not None:
            return found
    return detect_auto_reply(message, text)

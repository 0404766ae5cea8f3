"""Whatever arrives is classified or marked unclassifiable with a reason, never a crash."""

from __future__ import annotations

import base64
from email.errors import HeaderParseError
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

import pytest

from shared.replies.classifier import classify_raw
from shared.replies.detectors import detect_machine
from shared.replies.schemas import ReplyLabel, ReplyStatus
from tests.unit.replies.messages import dsn, human


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe\x00 not a message at all",
        b"Subject: no other headers\r\n\r\n",
        b"From: \xff\xfe\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n--",
        b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\ngarbage",
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!",
        b"Content-Type: text/html\r\n\r\n<html><<<div>>",
    ],
)
def test_malformed_input_never_raises(raw: bytes) -> None:
    result = classify_raw(raw)
    assert 0.0 <= result.confidence <= 1.0
    assert result.label is not ReplyLabel.POSITIVE or result.confidence < 0.99
    if result.status is ReplyStatus.UNCLASSIFIABLE:
        assert result.reason


def test_empty_body_is_unclassifiable_with_a_reason() -> None:
    result = classify_raw(human("> only the quote of our email\n> nothing new"))
    assert result.status is ReplyStatus.UNCLASSIFIABLE
    assert result.reason
    assert "no new text" in result.reason


def test_a_ten_megabyte_message_is_classified_quickly() -> None:
    body = "Yes, let's talk next week.\n\n" + "x" * (10 * 1024 * 1024)
    result = classify_raw(human(body))
    assert result.status is ReplyStatus.CLASSIFIED
    assert len(result.reduced_text) <= 5_000


def test_a_message_from_a_delivery_system_is_never_positive() -> None:
    raw = (
        b"From: postmaster@mx.example\r\nSubject: Notice\r\n\r\n"
        b"Great news, we would love to talk! Your message is queued.\r\n"
    )
    assert classify_raw(raw).label is not ReplyLabel.POSITIVE


def _raw(body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    return (
        b"From: Pat <pat@buyer.example>\r\nTo: sam@sender.example\r\nSubject: Re: Quick idea\r\n"
        b"Message-ID: <r1@buyer.example>\r\nContent-Type: " + content_type.encode() + b"\r\n\r\n"
    ) + body


GERMAN = "Ja, gerne. Rufen Sie mich nächste Woche an, Grüße"
CURLY = "We don\u2019t need it \u2013 thanks."


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # UTF-8 labelled Latin-1, the mislabel that turns "nächste" into "nÃ¤chste".
        (_raw(GERMAN.encode(), "text/plain; charset=iso-8859-1"), GERMAN),
        (_raw(GERMAN.encode(), "text/plain; charset=us-ascii"), GERMAN),
        # Latin-1 / Windows-1252 labelled UTF-8 (Outlook's curly apostrophe is 0x92).
        (_raw(GERMAN.encode("latin-1")), GERMAN),
        (_raw(CURLY.encode("cp1252")), CURLY),
        # ASCII labelled UTF-16: read as UTF-16 it is a line of CJK characters.
        (_raw(b"Yes, let's talk next week.", "text/plain; charset=utf-16"), "Yes, let's talk"),
        # A charset Python does not know.
        (_raw(b"Yes, let's talk next week.", "text/plain; charset=x-mac-bogus"), "Yes, let's"),
        # Real UTF-16 with its byte order mark still reads as UTF-16.
        (
            _raw(
                base64.b64encode("Ja, gerne.".encode("utf-16")),
                "text/plain; charset=utf-16\r\nContent-Transfer-Encoding: base64",
            ),
            "Ja, gerne.",
        ),
    ],
)
def test_wrong_charsets_are_read_as_what_the_bytes_are(raw: bytes, expected: str) -> None:
    result = classify_raw(raw)
    assert result.status is ReplyStatus.CLASSIFIED
    assert result.reduced_text.startswith(expected)
    assert expected.split()[0] in result.evidence.excerpt


def test_a_wrong_charset_is_named_in_the_evidence() -> None:
    result = classify_raw(_raw(GERMAN.encode(), "text/plain; charset=iso-8859-1"))
    assert any("wrong charset 'iso-8859-1'" in signal for signal in result.evidence.signals)


@pytest.mark.parametrize(
    "body",
    [
        bytes(range(256)) * 8,
        bytes((i * 7919) % 256 for i in range(4096)),
    ],
)
def test_binary_text_is_unclassifiable_not_a_guess(body: bytes) -> None:
    result = classify_raw(_raw(body))
    assert result.status is ReplyStatus.UNCLASSIFIABLE
    assert result.reason
    assert "unreadable" in result.reason
    assert result.confidence == 0.0


@pytest.mark.parametrize(
    ("markup", "label", "absent"),
    [
        # Gmail: the quote is a div.gmail_quote after the new text.
        (
            '<div dir="ltr">Please take me off your list.</div><br><div class="gmail_quote">'
            '<div class="gmail_attr">On Mon, Sam wrote:</div><blockquote class="gmail_quote">'
            "Hi Pat, would a call next week work? Happy to talk!</blockquote></div>",
            ReplyLabel.UNSUBSCRIBE,
            "call next week",
        ),
        # Outlook: a reply header block, then the quoted message as siblings, no blockquote.
        (
            "<html><head><style>p{margin:0}</style></head><body><p>Sure, Tuesday 2pm works, "
            'send an invite.</p><div id="divRplyFwdMsg"><b>From:</b> Sam<br><b>Sent:</b> '
            "Monday</div><div>Hi Pat, not interested? Reply stop to opt out.</div></body></html>",
            ReplyLabel.POSITIVE,
            "opt out",
        ),
        # No quote at all, entities and a script a sender's client left in.
        (
            "<p>We&#39;re set with our current vendor &mdash; not interested.</p>"
            "<script>var interested = 'yes, book a meeting';</script>",
            ReplyLabel.OBJECTION,
            "book a meeting",
        ),
    ],
)
def test_html_only_bodies_are_read_without_their_quotes(
    markup: str, label: ReplyLabel, absent: str
) -> None:
    result = classify_raw(_raw(markup.encode(), "text/html; charset=utf-8"))
    assert result.status is ReplyStatus.CLASSIFIED
    assert result.label is label
    assert absent not in result.reduced_text
    assert "html-only" in result.evidence.signals


@pytest.mark.parametrize(
    "raw",
    [
        # Nothing but a body.
        b"Yes, let's talk next week.\r\n",
        # No From, no Message-ID, no Subject, no Content-Type, bare LF line ends.
        b"To: sam@sender.example\nIn-Reply-To: <t1@sender.example>\n\nYes, let's talk next week.\n",
        # A multipart type whose boundary parameter is missing: the body is still text.
        b"From: pat@buyer.example\r\nContent-Type: multipart/mixed\r\n\r\n"
        b"Yes, let's talk next week.",
        # A multipart whose closing boundary never came (a truncated message).
        b"From: pat@buyer.example\r\nContent-Type: multipart/alternative; boundary=zz\r\n\r\n"
        b"--zz\r\nContent-Type: text/plain\r\n\r\nYes, let's talk next week.\r\n--zz\r\n"
        b"Content-Type: text/html\r\n\r\n<p>Yes, let's ta",
    ],
)
def test_missing_headers_and_broken_structure_still_read_the_text(raw: bytes) -> None:
    result = classify_raw(raw)
    assert result.status is ReplyStatus.CLASSIFIED
    assert result.reduced_text == "Yes, let's talk next week."
    assert result.label is ReplyLabel.POSITIVE


@pytest.mark.parametrize(
    "subject",
    [
        # Outlook and Exchange encode the localized auto-reply prefix; no RFC 3834 header.
        b"=?utf-8?Q?R=C3=A9ponse_automatique=C2=A0:_Quick_idea?=",
        b"=?iso-8859-1?Q?Abwesenheitsnotiz:_Quick_idea?=",
        b"=?utf-8?B?UmVzcHVlc3RhIGF1dG9tw6F0aWNhOiBRdWljayBpZGVh?=",
        "Réponse automatique : Quick idea".encode(),
    ],
)
def test_an_auto_reply_with_an_encoded_subject_is_recognised(subject: bytes) -> None:
    raw = (
        b"From: Pat <pat@buyer.example>\r\nSubject: " + subject + b"\r\n"
        b"Message-ID: <r1@buyer.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + "Merci pour votre message. Je le lirai dès que possible.".encode()
    )
    result = classify_raw(raw)
    assert result.label is ReplyLabel.OOO
    assert result.evidence.source.startswith("detector:")


def test_a_report_part_the_generator_cannot_flatten_is_still_read() -> None:
    """A status block with a header value holding a line break (what a mangled fold leaves)
    makes the email package refuse to flatten it; the bounce is still recognised."""
    message = BytesParser(policy=compat32).parsebytes(dsn("5.1.1", "550 5.1.1 User unknown"))
    (status,) = [p for p in message.walk() if p.get_content_type() == "message/delivery-status"]
    blocks = status.get_payload()
    assert isinstance(blocks, list)
    block = blocks[-1]
    assert isinstance(block, Message)
    block["Remote-MTA"] = "dns; 127.0.0.1\nDiagnostic-Code: smtp; 550 5.1.1 User unknown"
    with pytest.raises(HeaderParseError):
        block.as_string()
    found = detect_machine(message, "")
    assert found is not None
    assert (found.label, found.sub_label) == (ReplyLabel.BOUNCE, "hard")


@pytest.mark.parametrize(
    "raw",
    [
        # 8-bit bytes in Content-Disposition: the email package returns a Header object.
        b"From: pat@buyer.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
        b"Content-Type: text/plain\r\nContent-Disposition: inline; filename=\xe9t\xe9.txt\r\n\r\n"
        b"Yes, let's talk next week.\r\n--b--\r\n",
        # A charset name no codec lookup accepts.
        _raw(b"Yes, let's talk next week.", 'text/plain; charset="utf-8\x00"'),
    ],
)
def test_headers_the_email_package_cannot_handle_do_not_stop_the_read(raw: bytes) -> None:
    result = classify_raw(raw)
    assert result.status is ReplyStatus.CLASSIFIED
    assert result.reduced_text == "Yes, let's talk next week."

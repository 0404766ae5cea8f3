"""Outbound messages parse back with every header we promise; inbound parsing never raises."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.mail.mime import (
    Compliance,
    InvalidMessage,
    MessageContent,
    Thread,
    build_message,
    new_message_id,
    parse_message,
)
from shared.mail.sandbox import Fault, draw_fault
from shared.mail.schemas import FaultPlan

SENDER = "alex@sender.example"
URL = "https://asep.example/u/tok.sig"
POSTAL = "ShaunAI Ltd, 1 Example Street, London"
DATE = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _build(**overrides: object) -> bytes:
    arguments: dict[str, object] = {
        "message_id": "<abc123@sender.example>",
        "date": DATE,
        "sender": SENDER,
        "sender_name": "Alex Rep",
        "recipient": "pat@buyer.example",
        "recipient_name": "Pat Buyer",
        "content": MessageContent("Idea for Buyer — €5 pilot", "Hi Pat,\nA thought.", "<p>Hi</p>"),
        "compliance": Compliance(POSTAL, URL, "unsubscribe@sender.example"),
    }
    arguments.update(overrides)
    return build_message(**arguments)  # type: ignore[arg-type]


def _parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def test_every_header_round_trips() -> None:
    raw = _build()
    message = _parse(raw)
    assert message["Message-ID"] == "<abc123@sender.example>"
    assert parsedate_to_datetime(message["Date"]) == DATE
    assert message["From"].addresses[0].addr_spec == SENDER
    assert message["From"].addresses[0].display_name == "Alex Rep"
    assert message["To"].addresses[0].addr_spec == "pat@buyer.example"
    assert message["Subject"] == "Idea for Buyer — €5 pilot"
    assert message["List-Unsubscribe"] == f"<{URL}>, <mailto:unsubscribe@sender.example>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["In-Reply-To"] is None
    assert message.get_content_type() == "multipart/alternative"
    # On the wire: CRLF line endings, 7-bit headers (the subject is RFC 2047 encoded).
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\n" not in head.replace(b"\r\n", b"")
    assert head.isascii()


def test_footer_carries_postal_address_and_link_in_both_parts() -> None:
    message = _parse(_build())
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    text_body = text.get_content().replace("\r\n", "\n")
    html_body = html.get_content()
    assert text_body.startswith("Hi Pat,\nA thought.")
    assert POSTAL in text_body
    assert URL in text_body
    assert POSTAL in html_body
    assert f'href="{URL}"' in html_body


def test_text_only_message() -> None:
    message = _parse(_build(content=MessageContent("Hello", "Body")))
    assert message.get_content_type() == "text/plain"
    assert POSTAL in message.get_content()


def test_follow_up_threads_to_the_earlier_touch() -> None:
    thread = Thread("<second@sender.example>", ("<first@sender.example>",))
    message = _parse(_build(thread=thread))
    assert message["In-Reply-To"] == "<second@sender.example>"
    assert message["References"].split() == ["<first@sender.example>", "<second@sender.example>"]


def test_long_reference_chains_keep_root_and_latest() -> None:
    references = tuple(f"<m{i}@x.example>" for i in range(40))
    chain = Thread("<latest@x.example>", references).reference_chain()
    assert len(chain) == 20
    assert chain[0] == "<m0@x.example>"
    assert chain[-1] == "<latest@x.example>"


@pytest.mark.parametrize(
    "overrides",
    [
        {"content": MessageContent("Hi\r\nBcc: victim@x.example", "body")},
        {"compliance": Compliance("", URL)},
        {"compliance": Compliance(POSTAL, "http://evil.example/u/x")},
        {"message_id": "not-a-message-id"},
        {"recipient": "no-at-sign"},
    ],
)
def test_refuses_what_would_make_a_bad_message(overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidMessage):
        _build(**overrides)


def test_new_message_id_uses_the_sender_domain() -> None:
    first, second = new_message_id("A@Sender.Example"), new_message_id("a@sender.example")
    assert first.endswith("@sender.example>")
    assert first.startswith("<")
    assert first != second


def test_parse_reads_our_own_message() -> None:
    parsed = parse_message(_build(thread=Thread("<prev@sender.example>")))
    assert parsed.message_id == "<abc123@sender.example>"
    assert parsed.in_reply_to == "<prev@sender.example>"
    assert parsed.references == ["<prev@sender.example>"]
    assert parsed.sender == SENDER
    assert parsed.recipients == ["pat@buyer.example"]
    assert parsed.subject == "Idea for Buyer — €5 pilot"
    assert parsed.problems == []


def test_parse_finds_the_original_inside_a_bounce() -> None:
    raw = (
        b"From: MAILER-DAEMON@buyer.example\r\nTo: alex@sender.example\r\n"
        b"Message-ID: <dsn1@buyer.example>\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nMailbox unknown\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; buyer.example\r\n\r\nFinal-Recipient: rfc822; pat@buyer.example\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n"
        b"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        b"From: alex@sender.example\r\nMessage-ID: <orig42@sender.example>\r\n"
        b"--B--\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.content_type == "multipart/report"
    assert parsed.reported_message_ids == ["<orig42@sender.example>"]


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        # RFC 6532: raw UTF-8 in the header, as some clients send it.
        ("Re: Grüße aus Köln".encode(), "Re: Grüße aus Köln"),
        # A client's local charset, unlabelled.
        ("Re: Grüße aus Köln".encode("cp1252"), "Re: Grüße aus Köln"),
        (
            b"=?iso-8859-1?Q?R=E9ponse_automatique?= : Quick idea",
            "Réponse automatique : Quick idea",
        ),
        # An encoded word whose charset does not exist: its bytes are UTF-8.
        (b"=?x-bogus?Q?R=C3=A9ponse?= automatique", "Réponse automatique"),
    ],
)
def test_subjects_in_wrong_or_missing_charsets_are_read(subject: bytes, expected: str) -> None:
    parsed = parse_message(b"From: pat@buyer.example\r\nSubject: " + subject + b"\r\n\r\nhi")
    assert parsed.subject == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\x01\x02 binary junk \xff\xfe",
        b"no headers at all, just text",
        b"Subject: =?utf-8?q?broken=ZZ?=\r\nFrom: \xff\xfe@\x00x\r\n\r\nbody",
        b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--",
        b"Message-ID: <" + b"a" * 5000 + b"@x>\r\n\r\n",
    ],
)
def test_parse_never_raises_and_reports_problems(raw: bytes) -> None:
    parsed = parse_message(raw)
    assert parsed.problems, raw[:40]
    for text in [parsed.subject or "", parsed.sender or "", *parsed.recipients]:
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogates: PostgreSQL must accept it


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_survives_arbitrary_bytes(raw: bytes) -> None:
    parsed = parse_message(raw)
    for text in [parsed.subject or "", parsed.sender or "", parsed.message_id or ""]:
        assert "\x00" not in text
        text.encode("utf-8")


def test_fault_draws_follow_the_plan_and_the_seed() -> None:
    plan = FaultPlan(
        throttle_rate=0.05, unavailable_rate=0.05, timeout_rate=0.05, unknown_rate=0.05, seed=7
    )
    draws = [draw_fault(plan, random.Random(7), writing=True) for _ in range(1)]
    again = [draw_fault(plan, random.Random(7), writing=True) for _ in range(1)]
    assert draws == again
    rng = random.Random(11)
    outcomes = [draw_fault(plan, rng, writing=True) for _ in range(20_000)]
    faults = sum(outcome is not None for outcome in outcomes) / len(outcomes)
    assert 0.18 < faults < 0.22
    assert {Fault.TIMEOUT_AFTER_WRITE, Fault.TIMEOUT_BEFORE_WRITE, Fault.UNKNOWN} <= set(outcomes)
    reads = [draw_fault(plan, rng, writing=False) for _ in range(5_000)]
    assert Fault.UNKNOWN not in reads
    assert Fault.TIMEOUT_AFTER_WRITE not in reads


def test_fault_rates_cannot_exceed_one() -> None:
    with pytest.raises(ValueError, match="more than 1"):
        FaultPlan(throttle_rate=0.6, unknown_rate=0.6)

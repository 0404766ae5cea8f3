"""Detectors recognise machine-generated mail before any model reads it."""

from __future__ import annotations

import pytest

from shared.replies.classifier import classify_raw
from shared.replies.detectors import detect_machine, detect_unsubscribe
from shared.replies.reduce import parse
from shared.replies.schemas import ReplyLabel
from tests.unit.replies.messages import arf, dsn, human


@pytest.mark.parametrize(
    ("status", "diagnostic", "action", "label", "sub_label"),
    [
        (
            "5.1.1",
            "550 5.1.1 <pat@buyer.example>: Recipient address rejected: User unknown",
            "failed",
            ReplyLabel.BOUNCE,
            "hard",
        ),
        ("5.1.2", "550 5.1.2 Host unknown", "failed", ReplyLabel.BOUNCE, "hard"),
        ("5.7.1", "550 5.7.1 Message rejected as spam", "failed", ReplyLabel.BOUNCE, "soft"),
        ("4.2.2", "452 4.2.2 Mailbox full", "delayed", ReplyLabel.BOUNCE, "soft"),
        ("5.2.2", "552 5.2.2 Mailbox over quota", "failed", ReplyLabel.BOUNCE, "soft"),
        ("2.0.0", "250 2.0.0 OK", "delivered", ReplyLabel.NEUTRAL, "delivery_report"),
    ],
)
def test_dsn_status_codes(
    status: str, diagnostic: str, action: str, label: ReplyLabel, sub_label: str
) -> None:
    result = classify_raw(dsn(status, diagnostic, action))
    assert (result.label, result.sub_label) == (label, sub_label)
    assert result.evidence.source == "detector:dsn"
    if label is ReplyLabel.BOUNCE:
        assert result.evidence.addresses == ["pat@buyer.example"]
        assert result.evidence.status_codes == [status]


@pytest.mark.parametrize("feedback_type", ["abuse", "opt-out", "fraud"])
def test_arf_feedback_type_is_the_sub_label(feedback_type: str) -> None:
    result = classify_raw(arf(feedback_type))
    assert (result.label, result.sub_label) == (ReplyLabel.COMPLAINT, feedback_type)
    assert result.evidence.addresses == ["pat@buyer.example"]


def test_plain_text_bounce_from_a_mailer_daemon() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example\r\nTo: sam@sender.example\r\n"
        b"Subject: failure notice\r\n\r\nHi. This is the qmail-send program.\r\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        b"<nobody@buyer.example>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n"
    )
    result = classify_raw(raw)
    assert (result.label, result.sub_label) == (ReplyLabel.BOUNCE, "hard")
    assert "nobody@buyer.example" in result.evidence.addresses


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Auto-Submitted": "auto-replied"}, "I am out of the office until Monday."),
        ({"X-Autoreply": "yes"}, "Ich bin bis zum 3. Mai nicht im Büro."),
        ({"Precedence": "auto_reply"}, "Je suis absente du bureau jusqu'au 3 juin."),
        ({}, "Estoy fuera de la oficina hasta el lunes 10."),
    ],
)
def test_out_of_office_in_headers_or_words(headers: dict[str, str], body: str) -> None:
    result = classify_raw(human(body, subject="Automatic reply: Quick idea", headers=headers))
    assert result.label is ReplyLabel.OOO
    assert result.sub_label == "out_of_office"


def test_an_auto_reply_that_is_not_out_of_office() -> None:
    message = parse(
        human(
            "We received your request. Ticket #4411.", headers={"Auto-Submitted": "auto-generated"}
        )
    )
    assert message is not None
    found = detect_machine(message, "We received your request. Ticket #4411.")
    assert found is not None
    assert (found.label, found.sub_label) == (ReplyLabel.OOO, "auto_reply")


@pytest.mark.parametrize(
    "text",
    [
        "Please remove me from your list.",
        "Unsubscribe",
        "Bitte tragen Sie mich aus dem Verteiler aus.",
        "Merci de me désinscrire.",
        "Not interested. Stop emailing me.",
    ],
)
def test_explicit_unsubscribe_requests(text: str) -> None:
    found = detect_unsubscribe(text, "Re: Quick idea")
    assert found is not None
    assert found.label is ReplyLabel.UNSUBSCRIBE


def test_a_long_reply_mentioning_unsubscribe_is_left_to_the_model() -> None:
    text = " ".join(["We are evaluating vendors and like the approach."] * 6)
    assert detect_unsubscribe(text + " How do your unsubscribe links work?", "") is None


def test_a_human_reply_reaches_the_model() -> None:
    result = classify_raw(human("Sounds great, can we talk on Thursday at 2pm?"))
    assert result.label is ReplyLabel.POSITIVE
    assert result.evidence.source == "model:linear"
    assert 0.0 <= result.confidence <= 1.0
    assert result.recommendation

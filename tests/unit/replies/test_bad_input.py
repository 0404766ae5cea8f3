"""Whatever arrives is classified or marked unclassifiable with a reason, never a crash."""

from __future__ import annotations

import pytest

from shared.replies.classifier import classify_raw
from shared.replies.schemas import ReplyLabel, ReplyStatus
from tests.unit.replies.messages import human


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

"""Log lines are JSON, carry the request's ids, and never carry a secret."""

from __future__ import annotations

import json
import logging

import pytest

from shared.telemetry.context import correlation_id_var, request_id_var
from shared.telemetry.logging import REDACTED, JsonFormatter, redact


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("connecting to postgresql://asep_owner:hunter2@db.example:5432/asep", "hunter2"),
        ("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "eyJhbGciOiJSUzI1NiJ9"),
        ("retrying with api_key=sk-live-abc123", "sk-live-abc123"),
        ('{"client_secret": "s3cr3t-value"}', "s3cr3t-value"),
        ("password='pa55word'", "pa55word"),
        ("refresh token=1//0gabc", "1//0gabc"),
    ],
)
def test_secrets_are_redacted(raw: str, secret: str) -> None:
    cleaned = redact(raw)
    assert secret not in cleaned
    assert REDACTED in cleaned


def test_ordinary_text_is_left_alone() -> None:
    text = "sent 40 messages to https://example.com/path?page=2 in 1.5s"
    assert redact(text) == text


def test_a_log_line_is_json_with_ids_and_extras() -> None:
    record = logging.makeLogRecord(
        {
            "name": "asep.http",
            "levelname": "INFO",
            "msg": "request %s",
            "args": ("done",),
            "status": 200,
        }
    )
    request_token = request_id_var.set("req-1")
    correlation_token = correlation_id_var.set("journey-9")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(request_token)
        correlation_id_var.reset(correlation_token)
    assert line["message"] == "request done"
    assert line["request_id"] == "req-1"
    assert line["correlation_id"] == "journey-9"
    assert line["status"] == 200

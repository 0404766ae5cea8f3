"""JSON log lines with request/correlation ids, and secrets redacted before they are written."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from shared.telemetry.context import correlation_id_var, request_id_var, tenant_id_var

# Each pattern keeps its first group and masks what follows: credentials inside URLs,
# bearer tokens, and key=value pairs whose key names a secret.
_REDACTIONS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+(?=@)", re.IGNORECASE),
    re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE),
    re.compile(
        r"""(\b(?:password|passwd|secret|token|api[_-]?key|client[_-]?secret|authorization)"""
        r"""["']?\s*[:=]\s*["']?)[^\s"',;&]+""",
        re.IGNORECASE,
    ),
)
REDACTED = "[REDACTED]"

_STANDARD_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def redact(text: str) -> str:
    for pattern in _REDACTIONS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, var in (
            ("request_id", request_id_var),
            ("correlation_id", correlation_id_var),
            ("tenant_id", tenant_id_var),
        ):
            value = var.get()
            if value is not None:
                entry[key] = value
        for key, value in vars(record).items():
            if key not in _STANDARD_RECORD_FIELDS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log repeats what our request log says, with the raw query string.
    logging.getLogger("uvicorn.access").disabled = True
    for chatty in ("pgserver", "alembic.runtime.migration", "httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)

"""Opaque cursors for keyset pagination (by id, or by creation time then id)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from shared.errors import ValidationFailed


class InvalidCursor(ValidationFailed):
    code = "invalid_cursor"
    title = "Invalid cursor"


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str) -> uuid.UUID:
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise InvalidCursor("The cursor is not one this API issued.") from exc


def encode_time_cursor(created_at: datetime, last_id: uuid.UUID) -> str:
    """A cursor for keyset pagination by (created_at, id): chronological, ties broken by id."""
    raw = created_at.isoformat().encode() + b"|" + last_id.bytes
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_time_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, id_bytes = raw[:-17], raw[-16:]
        if raw[-17:-16] != b"|":
            raise ValueError("no separator")
        created_at = datetime.fromisoformat(stamp.decode())
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return created_at, uuid.UUID(bytes=id_bytes)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursor("The cursor is not one this API issued.") from exc

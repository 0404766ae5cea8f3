"""Opaque cursors for keyset pagination by id."""

from __future__ import annotations

import base64
import binascii
import uuid

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

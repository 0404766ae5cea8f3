"""Signed booking links: `/v1/meetings/book/{token}` names its tenant, meeting and proposal.

A token is `base64url(payload) "." base64url(HMAC-SHA256(key, context || payload))`; the
payload is a version byte, the tenant's and the meeting's 16-byte ids, the proposal round
and the expiry (Unix seconds). The round makes an earlier proposal's link stop working once
slots are proposed again; single use is the meeting's own state (a choice is recorded once).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote

from shared.config import Environment, Settings, get_settings
from shared.secrets.local_keys import local_signing_key

_VERSION = 1
_CONTEXT = b"asep-meeting-link-v1\x00"
_PAYLOAD = struct.Struct(">B16s16sHQ")


class InvalidBookingToken(ValueError):
    pass


@dataclass(frozen=True)
class BookingClaim:
    tenant_id: uuid.UUID
    meeting_id: uuid.UUID
    round: int
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class BookingLinkSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the meeting link key must be at least 128 bits")
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, _CONTEXT + payload, hashlib.sha256).digest()

    def token(self, claim: BookingClaim) -> str:
        payload = _PAYLOAD.pack(
            _VERSION,
            claim.tenant_id.bytes,
            claim.meeting_id.bytes,
            claim.round,
            int(claim.expires_at.timestamp()),
        )
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, token: str, now: datetime) -> BookingClaim:
        try:
            encoded_payload, encoded_mac = token.split(".")
            payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
        except ValueError as exc:  # binascii.Error is a ValueError
            raise InvalidBookingToken("malformed token") from exc
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidBookingToken("bad signature")
        if len(payload) != _PAYLOAD.size or payload[0] != _VERSION:
            raise InvalidBookingToken("unknown token version")
        _, tenant, meeting, round_, expires = _PAYLOAD.unpack(payload)
        claim = BookingClaim(
            uuid.UUID(bytes=tenant),
            uuid.UUID(bytes=meeting),
            round_,
            datetime.fromtimestamp(expires, UTC),
        )
        if claim.expires_at <= now:
            raise InvalidBookingToken("expired")
        return claim


def signer_from_settings(settings: Settings) -> BookingLinkSigner:
    if settings.meeting_link_secret is not None:
        return BookingLinkSigner(settings.meeting_link_secret.get_secret_value().encode("utf-8"))
    if settings.env is Environment.AZURE:
        raise RuntimeError("ASEP_MEETING_LINK_SECRET is required in Azure")
    return BookingLinkSigner(local_signing_key(settings.meeting_link_secret_file))


@lru_cache(maxsize=1)
def booking_signer() -> BookingLinkSigner:
    return signer_from_settings(get_settings())


def booking_url(claim: BookingClaim, settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    token = booking_signer().token(claim)
    return f"{settings.public_base_url.rstrip('/')}/v1/meetings/book/{quote(token, safe='')}"

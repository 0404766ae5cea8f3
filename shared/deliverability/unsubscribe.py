"""Signed unsubscribe links (RFC 8058 one-click) that name their tenant and address.

A token is `base64url(payload) "." base64url(HMAC-SHA256(key, context || payload))` where the
payload is a version byte, the tenant's 16-byte id and the UTF-8 address. It never expires:
CAN-SPAM requires the opt-out to keep working for at least 30 days after a send, and an
old email's link should still work years later. The key is per deployment: a setting in
Azure (Key Vault reference), a generated file under the data dir locally and in tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

from shared.config import Environment, Settings, get_settings
from shared.secrets.local_keys import local_signing_key

_VERSION = 1
_CONTEXT = b"asep-unsubscribe-v1\x00"
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


class InvalidUnsubscribeToken(ValueError):
    pass


@dataclass(frozen=True)
class UnsubscribeClaim:
    tenant_id: uuid.UUID
    address: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UnsubscribeSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the unsubscribe key must be at least 128 bits")
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, _CONTEXT + payload, hashlib.sha256).digest()

    def token(self, tenant_id: uuid.UUID, address: str) -> str:
        payload = bytes([_VERSION]) + tenant_id.bytes + address.lower().encode("utf-8")
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, token: str) -> UnsubscribeClaim:
        """The tenant and address a token names; raises InvalidUnsubscribeToken otherwise."""
        try:
            encoded_payload, encoded_mac = token.split(".")
            payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
        except ValueError as exc:  # binascii.Error is a ValueError
            raise InvalidUnsubscribeToken("malformed token") from exc
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise InvalidUnsubscribeToken("bad signature")
        if len(payload) < 18 or payload[0] != _VERSION:
            raise InvalidUnsubscribeToken("unknown token version")
        try:
            address = payload[17:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidUnsubscribeToken("malformed address") from exc
        return UnsubscribeClaim(uuid.UUID(bytes=payload[1:17]), address)


def signer_from_settings(settings: Settings) -> UnsubscribeSigner:
    if settings.unsubscribe_secret is not None:
        secret = settings.unsubscribe_secret.get_secret_value()
        return UnsubscribeSigner(secret.encode("utf-8"))
    if settings.env is Environment.AZURE:
        raise RuntimeError("ASEP_UNSUBSCRIBE_SECRET is required in Azure")
    return UnsubscribeSigner(local_signing_key(settings.unsubscribe_secret_file))


@lru_cache(maxsize=1)
def unsubscribe_signer() -> UnsubscribeSigner:
    return signer_from_settings(get_settings())


def unsubscribe_url(tenant_id: uuid.UUID, address: str, settings: Settings | None = None) -> str:
    """The https link for the List-Unsubscribe header and the message footer."""
    settings = settings or get_settings()
    token = unsubscribe_signer().token(tenant_id, address)
    return f"{settings.public_base_url.rstrip('/')}/u/{quote(token, safe='')}"

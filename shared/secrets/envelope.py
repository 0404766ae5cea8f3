"""Envelope encryption: each secret under its own AES-256-GCM data key, the data key wrapped
by the tenant's KEK through the secrets port.

The associated data binds a sealed blob to its tenant and purpose, so a blob copied into
another tenant's row, or from one field to another, fails to open instead of decrypting.
"""

from __future__ import annotations

import base64
import os
import uuid
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.config import get_settings
from shared.secrets.local import LocalKeyWrapper
from shared.secrets.port import KeyUnavailable, KeyWrapper

ENVELOPE_VERSION = 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _aad(tenant_id: uuid.UUID, purpose: str) -> bytes:
    return f"asep:v{ENVELOPE_VERSION}:{tenant_id}:{purpose}".encode()


def seal(
    wrapper: KeyWrapper, tenant_id: uuid.UUID, purpose: str, plaintext: bytes
) -> dict[str, Any]:
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, _aad(tenant_id, purpose))
    return {
        "v": ENVELOPE_VERSION,
        "kek": wrapper.key_id(tenant_id),
        "wrapped_key": _b64(wrapper.wrap(tenant_id, data_key)),
        "nonce": _b64(nonce),
        "ciphertext": _b64(ciphertext),
    }


def open_sealed(
    wrapper: KeyWrapper, tenant_id: uuid.UUID, purpose: str, envelope: dict[str, Any]
) -> bytes:
    if envelope.get("v") != ENVELOPE_VERSION:
        raise KeyUnavailable("unknown envelope version")
    data_key = wrapper.unwrap(tenant_id, base64.b64decode(envelope["wrapped_key"]))
    try:
        return AESGCM(data_key).decrypt(
            base64.b64decode(envelope["nonce"]),
            base64.b64decode(envelope["ciphertext"]),
            _aad(tenant_id, purpose),
        )
    except InvalidTag as exc:
        raise KeyUnavailable("the sealed secret does not open for this tenant") from exc


@lru_cache(maxsize=1)
def default_key_wrapper() -> KeyWrapper:
    """The one place the KEK store is chosen. Key Vault (per-tenant keys) plugs in here."""
    return LocalKeyWrapper(get_settings().tenant_kek_dir)

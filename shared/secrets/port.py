"""The secrets port: wrap and unwrap data keys with a per-tenant key-encryption key (KEK).

Azure: a Key Vault key per tenant (wrapKey / unwrapKey), so the KEK never leaves the vault.
One machine: a key file per tenant under the data dir (`local.py`). Only data keys cross
this port; what they encrypt never does (see `envelope.py`).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap


class KeyUnavailable(RuntimeError):
    """The tenant's KEK is missing or refused the data key (wrong tenant, tampered blob)."""


class KeyWrapper(Protocol):
    def key_id(self, tenant_id: uuid.UUID) -> str:
        """Which KEK (and version) wraps this tenant's data keys, stored beside the blob."""
        ...

    def wrap(self, tenant_id: uuid.UUID, data_key: bytes) -> bytes: ...

    def unwrap(self, tenant_id: uuid.UUID, wrapped: bytes) -> bytes: ...


def wrap_with(kek: bytes, data_key: bytes) -> bytes:
    """RFC 3394 AES key wrap, the algorithm Key Vault calls A256KW."""
    return aes_key_wrap(kek, data_key)


def unwrap_with(kek: bytes, wrapped: bytes) -> bytes:
    try:
        return aes_key_unwrap(kek, wrapped)
    # InvalidUnwrap (wrong KEK, tampered blob) is not a ValueError; ValueError is a bad length.
    except (InvalidUnwrap, ValueError) as exc:
        raise KeyUnavailable("the data key does not unwrap with this tenant's key") from exc


@dataclass
class InMemoryKeyWrapper:
    """The test fake: a random KEK per tenant, held in memory (RFC 3394 AES key wrap)."""

    keys: dict[uuid.UUID, bytes] = field(default_factory=dict)

    def _kek(self, tenant_id: uuid.UUID) -> bytes:
        return self.keys.setdefault(tenant_id, os.urandom(32))

    def key_id(self, tenant_id: uuid.UUID) -> str:
        return f"memory:{tenant_id}"

    def wrap(self, tenant_id: uuid.UUID, data_key: bytes) -> bytes:
        return wrap_with(self._kek(tenant_id), data_key)

    def unwrap(self, tenant_id: uuid.UUID, wrapped: bytes) -> bytes:
        return unwrap_with(self._kek(tenant_id), wrapped)

"""Per-tenant key-encryption keys as files under the data dir (local and test).

Each tenant gets a random 256-bit KEK in `<dir>/<tenant_id>.kek`, created once with mode
0600 (O_EXCL, so two processes racing to create it keep one key). Data keys are wrapped
with AES key wrap (RFC 3394), the algorithm Key Vault calls A256KW.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from shared.secrets.port import KeyUnavailable, unwrap_with, wrap_with

KEK_BYTES = 32


class LocalKeyWrapper:
    def __init__(self, key_dir: Path) -> None:
        self._dir = key_dir

    def _path(self, tenant_id: uuid.UUID) -> Path:
        return self._dir / f"{tenant_id}.kek"

    def _kek(self, tenant_id: uuid.UUID) -> bytes:
        path = self._path(tenant_id)
        if not path.exists():
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(os.urandom(KEK_BYTES))
        key = path.read_bytes()
        if len(key) != KEK_BYTES:
            raise KeyUnavailable(f"the key file for tenant {tenant_id} is damaged")
        return key

    def key_id(self, tenant_id: uuid.UUID) -> str:
        return f"file:{tenant_id}.kek"

    def wrap(self, tenant_id: uuid.UUID, data_key: bytes) -> bytes:
        return wrap_with(self._kek(tenant_id), data_key)

    def unwrap(self, tenant_id: uuid.UUID, wrapped: bytes) -> bytes:
        return unwrap_with(self._kek(tenant_id), wrapped)

"""Signing keys generated on first use under the data dir: the embedded default's stand-in
for the per-deployment secrets (Key Vault references) that Azure configures."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

KEY_BYTES = 32


def local_signing_key(path: Path) -> bytes:
    """Read the generated key, creating it (0600, atomically) on first use."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(KEY_BYTES))
    try:
        # link() fails if another process created the key first; then theirs is the key.
        os.link(candidate, path)
    except FileExistsError:
        pass
    finally:
        candidate.unlink()
    return bytes.fromhex(path.read_text().strip())

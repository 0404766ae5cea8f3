"""Envelope encryption through both key wrappers: a sealed secret opens only for its own
tenant and purpose, and the key file is created once with owner-only permissions."""

from __future__ import annotations

import base64
import stat
import uuid
from pathlib import Path

import pytest

from shared.secrets.envelope import open_sealed, seal
from shared.secrets.local import LocalKeyWrapper
from shared.secrets.port import InMemoryKeyWrapper, KeyUnavailable, KeyWrapper


@pytest.fixture(params=["memory", "file"])
def wrapper(request: pytest.FixtureRequest, tmp_path: Path) -> KeyWrapper:
    if request.param == "memory":
        return InMemoryKeyWrapper()
    return LocalKeyWrapper(tmp_path / "keys")


def test_a_sealed_secret_opens_for_its_tenant_and_purpose_only(wrapper: KeyWrapper) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    wrapper.wrap(other, bytes(32))  # the other tenant has a KEK of its own
    sealed = seal(wrapper, tenant, "hubspot-tokens", b"secret")

    assert b"secret" not in base64.b64decode(sealed["ciphertext"])
    assert open_sealed(wrapper, tenant, "hubspot-tokens", sealed) == b"secret"
    with pytest.raises(KeyUnavailable):
        open_sealed(wrapper, tenant, "another-field", sealed)
    with pytest.raises(KeyUnavailable):
        open_sealed(wrapper, other, "hubspot-tokens", sealed)
    with pytest.raises(KeyUnavailable):
        open_sealed(wrapper, tenant, "hubspot-tokens", {**sealed, "v": 99})


def test_the_key_file_is_created_once_and_owner_only(tmp_path: Path) -> None:
    tenant = uuid.uuid4()
    first = LocalKeyWrapper(tmp_path)
    sealed = seal(first, tenant, "p", b"x")
    key_file = tmp_path / f"{tenant}.kek"

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert open_sealed(LocalKeyWrapper(tmp_path), tenant, "p", sealed) == b"x"


def test_a_damaged_key_file_is_refused(tmp_path: Path) -> None:
    tenant = uuid.uuid4()
    (tmp_path / f"{tenant}.kek").write_bytes(b"short")
    with pytest.raises(KeyUnavailable):
        LocalKeyWrapper(tmp_path).wrap(tenant, bytes(32))

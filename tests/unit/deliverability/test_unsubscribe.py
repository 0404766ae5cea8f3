"""Unsubscribe tokens: they round-trip, and nothing but our key makes one verify."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from shared.config import Environment, Settings
from shared.deliverability.unsubscribe import (
    InvalidUnsubscribeToken,
    UnsubscribeSigner,
    signer_from_settings,
)

KEY = b"k" * 32


def test_round_trip_names_tenant_and_lowercased_address() -> None:
    tenant = uuid.uuid4()
    signer = UnsubscribeSigner(KEY)
    claim = signer.verify(signer.token(tenant, "Jane@Example.com"))
    assert claim.tenant_id == tenant
    assert claim.address == "jane@example.com"


def test_another_key_or_a_changed_byte_is_refused() -> None:
    token = UnsubscribeSigner(KEY).token(uuid.uuid4(), "jane@example.com")
    with pytest.raises(InvalidUnsubscribeToken):
        UnsubscribeSigner(b"x" * 32).verify(token)
    payload, mac = token.split(".")
    forged_payload = UnsubscribeSigner(KEY).token(uuid.uuid4(), "jane@example.com").split(".")[0]
    with pytest.raises(InvalidUnsubscribeToken):
        UnsubscribeSigner(KEY).verify(f"{forged_payload}.{mac}")
    for broken in ("", "abc", f"{payload}", f"{payload}.{mac}.x", f"{payload}.!!", "..."):
        with pytest.raises(InvalidUnsubscribeToken):
            UnsubscribeSigner(KEY).verify(broken)


@given(st.text(max_size=200))
def test_arbitrary_strings_never_verify_or_crash(text: str) -> None:
    with pytest.raises(InvalidUnsubscribeToken):
        UnsubscribeSigner(KEY).verify(text)


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="128 bits"):
        UnsubscribeSigner(b"short")


def test_local_key_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = Settings(env=Environment.TEST, data_dir=tmp_path)
    first = signer_from_settings(settings)
    second = signer_from_settings(settings)
    key_file = tmp_path / "keys" / "unsubscribe.key"
    assert key_file.stat().st_mode & 0o077 == 0
    tenant = uuid.uuid4()
    assert second.verify(first.token(tenant, "a@b.example")).tenant_id == tenant
    assert list(key_file.parent.iterdir()) == [key_file]


def test_configured_secret_wins_and_azure_requires_one(tmp_path: Path) -> None:
    configured = Settings(
        env=Environment.TEST, data_dir=tmp_path, unsubscribe_secret=SecretStr("s" * 32)
    )
    token = signer_from_settings(configured).token(uuid.uuid4(), "a@b.example")
    assert UnsubscribeSigner(b"s" * 32).verify(token).address == "a@b.example"
    assert not (tmp_path / "keys").exists()
    with pytest.raises(RuntimeError, match="ASEP_UNSUBSCRIBE_SECRET"):
        signer_from_settings(Settings(env=Environment.AZURE, data_dir=tmp_path))

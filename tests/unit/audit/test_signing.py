"""ES256 signers: the local key file and Key Vault (its HTTP transport replaced by a fake vault)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import HttpTransport
from azure.core.utils import CaseInsensitiveDict
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from shared.audit.signing import (
    KeyVaultSigner,
    LocalKeySigner,
    key_fingerprint,
    load_public_keys,
    public_key_pem,
    verify_es256,
)

VAULT = "https://unit-test.vault.azure.net"
KEY_URL = f"{VAULT}/keys/audit-checkpoints/0123456789abcdef"


def test_local_signer_signs_verifiably_and_persists_its_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit.pem"
    signer = LocalKeySigner.from_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = LocalKeySigner.from_file(path)
    assert again.key_id == signer.key_id == key_fingerprint(signer.public_key())
    signature = signer.sign(b"statement")
    assert len(signature) == 64
    assert verify_es256(again.public_key(), b"statement", signature)
    assert not verify_es256(again.public_key(), b"statement!", signature)
    assert not verify_es256(LocalKeySigner.generate().public_key(), b"statement", signature)
    assert not verify_es256(signer.public_key(), b"statement", signature[:63])


def test_pinned_keys_load_from_a_pem_bundle() -> None:
    a, b = LocalKeySigner.generate(), LocalKeySigner.generate()
    keys = load_public_keys(public_key_pem(a.public_key()) + public_key_pem(b.public_key()))
    assert set(keys) == {a.key_id, b.key_id}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _Response:
    """What azure-core's pipeline reads from a transport response."""

    def __init__(
        self, request: Any, status: int, payload: dict[str, Any] | None, headers: dict[str, str]
    ) -> None:
        self.request = request
        self.status_code = status
        self.reason = "OK" if status < 400 else "Unauthorized"
        self.headers = CaseInsensitiveDict({"content-type": "application/json", **headers})
        self.content_type = "application/json"
        self._body = json.dumps(payload or {}).encode()

    def body(self) -> bytes:
        return self._body

    def text(self, encoding: str | None = None) -> str:
        return self._body.decode()

    def json(self) -> Any:
        return json.loads(self._body)

    def read(self) -> bytes:
        return self._body

    @property
    def content(self) -> bytes:
        return self._body

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(self.status_code)


class FakeKeyVault(HttpTransport[Any, Any]):
    """Key Vault's REST surface for one EC P-256 key: the bearer challenge, get key, sign."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.requests: list[tuple[str, str]] = []

    def __enter__(self) -> FakeKeyVault:
        return self

    def __exit__(self, *args: object) -> None:
        return None

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def send(self, request: Any, **kwargs: Any) -> _Response:
        path = urlparse(request.url).path
        self.requests.append((request.method, path))
        if request.headers.get("Authorization") != "Bearer fake-token":
            challenge = (
                'Bearer authorization="https://login.microsoftonline.com/tenant", '
                'resource="https://vault.azure.net"'
            )
            return _Response(request, 401, None, {"WWW-Authenticate": challenge})
        numbers = self.key.public_key().public_numbers()
        jwk = {
            "kid": KEY_URL, "kty": "EC", "crv": "P-256", "key_ops": ["sign", "verify"],
            "x": _b64(numbers.x.to_bytes(32, "big")), "y": _b64(numbers.y.to_bytes(32, "big")),
        }  # fmt: skip
        if request.method == "GET" and path.startswith("/keys/audit-checkpoints"):
            return _Response(request, 200, {"key": jwk, "attributes": {"enabled": True}}, {})
        if request.method == "POST" and path.endswith("/sign"):
            body = json.loads(request.body or request.content)
            assert body["alg"] == "ES256"
            digest = base64.urlsafe_b64decode(body["value"] + "==")
            r, s = decode_dss_signature(self.key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))))
            raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
            return _Response(request, 200, {"kid": KEY_URL, "value": _b64(raw)}, {})
        return _Response(request, 404, {"error": {"code": "NotFound"}}, {})


class FakeCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("fake-token", int(time.time()) + 3600)


def test_key_vault_signer_hashes_locally_and_returns_a_verifiable_raw_signature() -> None:
    vault = FakeKeyVault()
    signer = KeyVaultSigner(KEY_URL, FakeCredential(), transport=vault)
    assert signer.key_id == key_fingerprint(vault.key.public_key())
    signature = signer.sign(b"checkpoint statement")
    assert verify_es256(vault.key.public_key(), b"checkpoint statement", signature)
    assert ("POST", "/keys/audit-checkpoints/0123456789abcdef/sign") in vault.requests
    assert hashlib.sha256(b"checkpoint statement").digest() != signature[:32]


def test_key_vault_signer_refuses_a_signature_that_does_not_verify() -> None:
    class LyingVault(FakeKeyVault):
        def send(self, request: Any, **kwargs: Any) -> _Response:
            response = super().send(request, **kwargs)
            if request.method == "POST":
                response._body = json.dumps({"kid": KEY_URL, "value": _b64(bytes(64))}).encode()
            return response

    signer = KeyVaultSigner(KEY_URL, FakeCredential(), transport=LyingVault())
    with pytest.raises(RuntimeError, match="does not verify"):
        signer.sign(b"x")


def test_key_vault_signer_rejects_a_key_url_that_is_not_one() -> None:
    with pytest.raises(ValueError, match="key URL"):
        KeyVaultSigner("http://unit-test.vault.azure.net/secrets/x", FakeCredential())

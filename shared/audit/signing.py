"""Checkpoint signing: ES256 (ECDSA P-256, SHA-256) through a port with two implementations.

Key Vault has no Ed25519, so both implementations use P-256. Signatures are the JWS raw
form (r || s, 64 bytes), which is what Key Vault returns; the local signer converts from
the DER that `cryptography` produces. A key id is the SHA-256 fingerprint of the public key
(SubjectPublicKeyInfo DER), so a verifier pins keys, never names.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from shared.config import Environment, Settings, get_settings

ALGORITHM = "ES256"
_COORDINATE_BYTES = 32


class CheckpointSigner(Protocol):
    @property
    def key_id(self) -> str: ...

    def public_key(self) -> ec.EllipticCurvePublicKey: ...

    def sign(self, message: bytes) -> bytes:
        """ES256 over `message`: raw r || s."""
        ...


def key_fingerprint(public_key: ec.EllipticCurvePublicKey) -> str:
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_es256(public_key: ec.EllipticCurvePublicKey, message: bytes, signature: bytes) -> bool:
    if len(signature) != 2 * _COORDINATE_BYTES or not isinstance(public_key.curve, ec.SECP256R1):
        return False
    r = int.from_bytes(signature[:_COORDINATE_BYTES], "big")
    s = int.from_bytes(signature[_COORDINATE_BYTES:], "big")
    try:
        public_key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


class LocalKeySigner:
    """A P-256 key in a PEM file (created on first use, mode 0600): local and test only."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError("checkpoint keys are EC P-256")
        self._key = private_key
        self._key_id = key_fingerprint(private_key.public_key())

    @classmethod
    def generate(cls) -> LocalKeySigner:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_file(cls, path: Path) -> LocalKeySigner:
        """Load the key at `path`, creating it atomically if it does not exist yet."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass  # another process created it first; use theirs
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(pem)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} does not hold an EC private key")
        return cls(key)

    @property
    def key_id(self) -> str:
        return self._key_id

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def sign(self, message: bytes) -> bytes:
        der = self._key.sign(message, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(_COORDINATE_BYTES, "big") + s.to_bytes(_COORDINATE_BYTES, "big")


class KeyVaultSigner:
    """An EC P-256 key in Azure Key Vault (or Managed HSM); the private key never leaves it.

    Key Vault signs a digest, so we hash locally and send the SHA-256; it returns r || s.
    """

    def __init__(self, key_url: str, credential: object, **client_options: object) -> None:
        from azure.keyvault.keys import KeyClient
        from azure.keyvault.keys.crypto import CryptographyClient

        parsed = urlparse(key_url)
        parts = [part for part in parsed.path.split("/") if part]
        if parsed.scheme != "https" or len(parts) not in (2, 3) or parts[0] != "keys":
            raise ValueError("key URL must be https://<vault>/keys/<name>[/<version>]")
        vault_url = f"{parsed.scheme}://{parsed.netloc}"
        version = parts[2] if len(parts) == 3 else None
        key_client = KeyClient(vault_url, credential, **client_options)  # type: ignore[arg-type]
        key = key_client.get_key(parts[1], version)
        # JsonWebKey sets its fields dynamically from the service's JWK.
        curve, x, y = (getattr(key.key, name, None) for name in ("crv", "x", "y"))
        if curve != "P-256" or not isinstance(x, bytes) or not isinstance(y, bytes):
            raise ValueError(f"{key_url} is not an EC P-256 key")
        self._public_key = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        ).public_key()
        self._key_id = key_fingerprint(self._public_key)
        self.key_url = key.id
        self._crypto = CryptographyClient(key, credential, **client_options)  # type: ignore[arg-type]

    @property
    def key_id(self) -> str:
        return self._key_id

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public_key

    def sign(self, message: bytes) -> bytes:
        from azure.keyvault.keys.crypto import SignatureAlgorithm

        digest = hashlib.sha256(message).digest()
        result = self._crypto.sign(SignatureAlgorithm.es256, digest)
        signature = bytes(result.signature)
        # Guard against a misconfigured key or a service change before it reaches a bundle.
        if not verify_es256(self._public_key, message, signature):
            raise RuntimeError("Key Vault returned a signature that does not verify")
        return signature


def public_key_pem(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_keys(pem_bundle: bytes) -> dict[str, ec.EllipticCurvePublicKey]:
    """Every EC public key in a PEM file (one or more blocks), by key id."""
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    marker = b"-----END PUBLIC KEY-----"
    for block in pem_bundle.split(marker):
        if b"-----BEGIN PUBLIC KEY-----" not in block:
            continue
        key = serialization.load_pem_public_key(block.strip() + b"\n" + marker + b"\n")
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("trusted checkpoint keys must be EC public keys")
        keys[key_fingerprint(key)] = key
    return keys


def signer_from_settings(settings: Settings | None = None) -> CheckpointSigner:
    """Key Vault when a key URL is configured, else the local key file (never in Azure)."""
    settings = settings or get_settings()
    if settings.audit_key_vault_key_url:
        from azure.identity import DefaultAzureCredential

        return KeyVaultSigner(settings.audit_key_vault_key_url, DefaultAzureCredential())
    if settings.env is Environment.AZURE:
        raise RuntimeError("ASEP_ENV=azure requires ASEP_AUDIT_KEY_VAULT_KEY_URL")
    return LocalKeySigner.from_file(settings.audit_signing_key_file)


def trusted_keys(settings: Settings | None = None) -> dict[str, ec.EllipticCurvePublicKey]:
    """The pinned checkpoint keys: the configured PEM file, else the signer's own key."""
    settings = settings or get_settings()
    if settings.audit_trusted_keys_path is not None:
        return load_public_keys(settings.audit_trusted_keys_path.read_bytes())
    signer = signer_from_settings(settings)
    return {signer.key_id: signer.public_key()}

"""The dev identity provider of the embedded default (ASEP_ENV local/test only).

A local EC P-256 key under the data dir signs ES256 access tokens; its public JWKS is a
file the token validator reads through a `file://` JWKS URI, so dev tokens go through the
same validation as Entra and Okta tokens. Each tenant gets its own dev issuer
(`urn:asep:dev-idp:<slug>`) because an issuer routes to exactly one tenant.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.config import Environment, Settings, get_settings
from shared.db.unit_of_work import tenant_unit_of_work
from shared.errors import NotFound
from shared.identity import repository, service
from shared.identity.model import Role
from shared.identity.schemas import SsoConnectionCreate, UserCreate
from shared.identity.tokens import Provider

DEV_AUDIENCE = "api://asep"
PLATFORM_SLUG = "platform"
PLATFORM_OPERATOR_SUBJECT = "dev-platform-operator"


class DevIssuerRefused(RuntimeError):
    pass


def _directory(settings: Settings) -> Path:
    return settings.data_dir / "dev-idp"


def issuer_for(slug: str) -> str:
    return f"urn:asep:dev-idp:{slug}"


def jwks_uri(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return (_directory(settings) / "jwks.json").resolve().as_uri()


def _require_dev(settings: Settings) -> None:
    if settings.env is Environment.AZURE:
        raise DevIssuerRefused("The dev identity provider is refused when ASEP_ENV=azure.")


def _load_or_create_key(settings: Settings) -> tuple[ec.EllipticCurvePrivateKey, str]:
    directory = _directory(settings)
    key_path = directory / "signing-key.pem"
    if not key_path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        temporary = key_path.with_suffix(".tmp")
        temporary.write_bytes(pem)
        temporary.chmod(0o600)
        temporary.replace(key_path)
    loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    public_jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(loaded.public_key()))
    kid = _thumbprint(public_jwk)
    public_jwk.update({"kid": kid, "use": "sig", "alg": "ES256"})
    jwks_path = directory / "jwks.json"
    document = json.dumps({"keys": [public_jwk]}, indent=2)
    if not jwks_path.exists() or jwks_path.read_text() != document:
        jwks_path.write_text(document)
    return loaded, kid


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (EC members in lexicographic order)."""
    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]},
        separators=(",", ":"),
        sort_keys=True,
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint_token(
    issuer: str,
    subject: str,
    *,
    ttl_seconds: int = 3600,
    extra_claims: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> str:
    settings = settings or get_settings()
    _require_dev(settings)
    key, kid = _load_or_create_key(settings)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": DEV_AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
        "scope": "asep.api",
    }
    claims.update(extra_claims or {})
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"})


def ensure_key(settings: Settings | None = None) -> str:
    """Create the signing key and JWKS file if missing; return the JWKS URI."""
    settings = settings or get_settings()
    _require_dev(settings)
    _load_or_create_key(settings)
    return jwks_uri(settings)


def dev_subject(role: str) -> str:
    return f"dev-{role}"


def ensure_dev_tenant_login(slug: str, role: Role, settings: Settings | None = None) -> None:
    """Give tenant `slug` the dev issuer as an SSO connection and a dev user for `role`."""
    settings = settings or get_settings()
    _require_dev(settings)
    uri = ensure_key(settings)
    tenant_id = service.find_tenant_id(slug)
    if tenant_id is None:
        raise NotFound(f"No tenant with slug '{slug}'.")
    issuer = issuer_for(slug)
    with tenant_unit_of_work(tenant_id) as uow:
        if repository.find_sso_connection(uow, issuer) is None:
            service.add_sso_connection(
                uow,
                SsoConnectionCreate(
                    provider=Provider.DEV, issuer=issuer, jwks_uri=uri, audiences=[DEV_AUDIENCE]
                ),
                actor=service.SYSTEM_ACTOR,
            )
        subject = dev_subject(role.value)
        if repository.find_user_by_subject(uow, issuer, subject) is None:
            service.add_user(
                uow,
                UserCreate(
                    issuer=issuer,
                    subject=subject,
                    role=role,
                    display_name=f"Demo {role.value}",
                    email=f"{role.value}@{slug}.example",
                ),
                actor_role=Role.OWNER,
                actor=service.SYSTEM_ACTOR,
            )


def dev_token(slug: str, role: Role, ttl_seconds: int = 3600) -> str:
    """A bearer token for the dev user with `role` in tenant `slug` (created if missing)."""
    ensure_dev_tenant_login(slug, role)
    return mint_token(issuer_for(slug), dev_subject(role.value), ttl_seconds=ttl_seconds)


def platform_token(ttl_seconds: int = 3600) -> str:
    return mint_token(issuer_for(PLATFORM_SLUG), PLATFORM_OPERATOR_SUBJECT, ttl_seconds=ttl_seconds)

"""Bearer JWT validation for Entra ID, Okta and the dev issuer (RFC 8725 practices).

Order of checks: the header is inspected but never trusted (the algorithm comes from our
allowlist and must match the key we hold for the kid), the signature is verified with a
key from the JWKS *we* configured for the issuer (never from `jku`/`x5u`/`jwk` headers),
and only then are claims read: iss, aud, exp, nbf, iat with a bounded leeway.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlparse

import httpx
import jwt
from jwt.exceptions import PyJWTError

ALLOWED_ALGORITHMS = frozenset({"RS256", "ES256"})
KEY_TYPE_FOR_ALGORITHM = {"RS256": "RSA", "ES256": "EC"}
LEEWAY_SECONDS = 90
MAX_TOKEN_BYTES = 16_384
# Header parameters that point at or carry a key: an attacker's way to choose the key.
FORBIDDEN_HEADER_PARAMETERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
ACCESS_TOKEN_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})
ENTRA_ISSUER_PREFIX = "https://login.microsoftonline.com/"


class Provider(StrEnum):
    ENTRA = "entra"
    OKTA = "okta"
    OIDC = "oidc"
    DEV = "dev"


class TokenRejected(Exception):
    """Why a token was refused. The reason is for logs and audit, never for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class TrustedIssuer:
    issuer: str
    audiences: frozenset[str]
    jwks_uri: str
    provider: Provider
    entra_tenant_id: str | None = None


@dataclass(frozen=True)
class VerifiedToken:
    issuer: str
    subject: str
    claims: dict[str, Any]


def entra_issuer(entra_tenant_id: str) -> str:
    return f"{ENTRA_ISSUER_PREFIX}{entra_tenant_id}/v2.0"


@dataclass
class _KeySet:
    keys: dict[str, dict[str, Any]]
    fetched_at: float


@dataclass
class JwksCache:
    """Keys per JWKS URI; refetched on an unknown kid at most once per cooldown.

    `file://` URIs read a local JWKS (the dev issuer); anything else is fetched over HTTP.
    """

    ttl_seconds: float = 3600.0
    refetch_cooldown_seconds: float = 5.0
    http_timeout_seconds: float = 5.0
    clock: Callable[[], float] = time.monotonic
    _sets: dict[str, _KeySet] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def key_for(self, jwks_uri: str, kid: str) -> dict[str, Any]:
        with self._lock:
            cached = self._sets.get(jwks_uri)
            now = self.clock()
            age = now - cached.fetched_at if cached is not None else float("inf")
            # An unknown kid usually means the IdP rotated keys; the cooldown stops a flood of
            # tokens with random kids from turning into a flood of JWKS fetches.
            unknown_kid = cached is not None and kid not in cached.keys
            if age > self.ttl_seconds or (unknown_kid and age > self.refetch_cooldown_seconds):
                cached = self._refresh(jwks_uri)
            assert cached is not None
            key = cached.keys.get(kid)
        if key is None:
            raise TokenRejected("unknown kid")
        return key

    def _refresh(self, jwks_uri: str) -> _KeySet:
        document = self._fetch(jwks_uri)
        keys = {
            str(jwk["kid"]): jwk
            for jwk in document.get("keys", [])
            if isinstance(jwk, dict) and "kid" in jwk and jwk.get("use", "sig") == "sig"
        }
        key_set = _KeySet(keys=keys, fetched_at=self.clock())
        self._sets[jwks_uri] = key_set
        return key_set

    def _fetch(self, jwks_uri: str) -> dict[str, Any]:
        parsed = urlparse(jwks_uri)
        try:
            if parsed.scheme == "file":
                with open(parsed.path, encoding="utf-8") as handle:
                    document: dict[str, Any] = json.load(handle)
                return document
            response = httpx.get(jwks_uri, timeout=self.http_timeout_seconds)
            response.raise_for_status()
            fetched: dict[str, Any] = response.json()
            return fetched
        except (OSError, httpx.HTTPError, ValueError) as exc:
            raise TokenRejected(f"jwks unavailable: {type(exc).__name__}") from exc


def read_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before verification: only to find which issuer's keys to use."""
    if not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise TokenRejected("malformed token")
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except PyJWTError as exc:
        raise TokenRejected("malformed token") from exc
    if not isinstance(claims, dict):
        raise TokenRejected("malformed token")
    return header, claims


def _check_header(header: dict[str, Any]) -> tuple[str, str]:
    algorithm = header.get("alg")
    if algorithm not in ALLOWED_ALGORITHMS:
        raise TokenRejected(f"algorithm not allowed: {algorithm!r}")
    present = FORBIDDEN_HEADER_PARAMETERS & header.keys()
    if present:
        raise TokenRejected(f"forbidden header parameter: {sorted(present)}")
    token_type = header.get("typ")
    if token_type is not None and str(token_type).lower() not in ACCESS_TOKEN_TYPES:
        raise TokenRejected(f"not an access token type: {token_type!r}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise TokenRejected("missing kid")
    return str(algorithm), kid


def _subject(issuer: TrustedIssuer, claims: dict[str, Any]) -> str:
    if issuer.provider is Provider.ENTRA:
        subject = claims.get("oid")
    elif issuer.provider is Provider.OKTA:
        # Okta's `sub` is the login (often an email address); `uid` is the stable user id.
        subject = claims.get("uid") or claims.get("sub")
    else:
        subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise TokenRejected("no stable subject claim")
    return subject


@dataclass
class AccessTokenValidator:
    jwks: JwksCache = field(default_factory=JwksCache)
    leeway_seconds: int = LEEWAY_SECONDS
    clock: Callable[[], float] = time.time

    def validate(self, token: str, issuer: TrustedIssuer) -> VerifiedToken:
        header, _ = read_unverified(token)
        algorithm, kid = _check_header(header)
        jwk = self.jwks.key_for(issuer.jwks_uri, kid)
        if jwk.get("kty") != KEY_TYPE_FOR_ALGORITHM[algorithm]:
            raise TokenRejected("algorithm does not match the key")
        if "alg" in jwk and jwk["alg"] != algorithm:
            raise TokenRejected("algorithm does not match the key")
        try:
            key = jwt.PyJWK(jwk, algorithm=algorithm).key
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[algorithm],
                audience=list(issuer.audiences),
                issuer=issuer.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud"], "verify_iat": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected("expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenRejected("not yet valid") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRejected("wrong audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenRejected("wrong issuer") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenRejected("bad signature") from exc
        except PyJWTError as exc:
            raise TokenRejected(f"invalid token: {type(exc).__name__}") from exc
        if float(claims["iat"]) > self.clock() + self.leeway_seconds:
            raise TokenRejected("issued in the future")
        self._check_access_token_claims(issuer, claims)
        return VerifiedToken(issuer=issuer.issuer, subject=_subject(issuer, claims), claims=claims)

    @staticmethod
    def _check_access_token_claims(issuer: TrustedIssuer, claims: dict[str, Any]) -> None:
        # ID tokens carry no delegated scopes or app roles; access tokens for an API do.
        if not claims.get("scp") and not claims.get("roles") and not claims.get("scope"):
            raise TokenRejected("not an access token (no scp/roles)")
        if "nonce" in claims or "at_hash" in claims:
            raise TokenRejected("ID token presented as an access token")
        if issuer.provider is Provider.ENTRA:
            tid = claims.get("tid")
            if tid is None or tid != issuer.entra_tenant_id:
                raise TokenRejected("tid does not match the onboarded Entra tenant")
            if issuer.issuer != entra_issuer(str(tid)):
                raise TokenRejected("issuer does not match tid")

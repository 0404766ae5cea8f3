"""Scoped API keys: `asep_<prefix>_<secret>`.

The prefix is public (shown in lists, routes the key to its tenant through the directory);
the secret is 256 random bits, stored only as SHA-256 (a key this long needs no slow hash).
Verified keys are cached for `CACHE_SECONDS`, which bounds how long a revoked key still
works on a warm instance.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.audit.schemas import Actor, AuditEventType
from shared.audit.service import AuditChain
from shared.db.directory import RouteKind, register_route, resolve_tenant
from shared.db.unit_of_work import TenantUnitOfWork, directory_unit_of_work, tenant_unit_of_work
from shared.errors import Forbidden, NotFound, ValidationFailed
from shared.identity import repository
from shared.identity.model import Role
from shared.identity.orm import ApiKey, User
from shared.identity.permissions import Permission, role_permissions
from shared.identity.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    Principal,
    PrincipalKind,
)
from shared.identity.tokens import TokenRejected

KEY_PATTERN = re.compile(r"^asep_([a-z2-7]{16})_([A-Za-z0-9_-]{43})$")
CACHE_SECONDS = 30.0
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _new_prefix() -> str:
    return base64.b32encode(secrets.token_bytes(10)).decode().lower()


def create_api_key(
    uow: TenantUnitOfWork, request: ApiKeyCreate, creator: Principal
) -> ApiKeyCreated:
    if creator.kind is not PrincipalKind.USER:
        raise Forbidden("API keys are created by users, not by other keys.")
    known = {permission.value for permission in Permission}
    unknown = sorted(set(request.scopes) - known)
    if unknown:
        raise ValidationFailed(f"Unknown scopes: {', '.join(unknown)}.", unknown_scopes=unknown)
    beyond = sorted(set(request.scopes) - creator.permissions)
    if beyond:
        raise Forbidden(f"A key cannot have scopes its creator lacks: {', '.join(beyond)}.")
    if request.expires_at is not None and request.expires_at <= datetime.now(UTC):
        raise ValidationFailed("expires_at must be in the future.")
    prefix, secret = _new_prefix(), secrets.token_urlsafe(32)
    key = ApiKey(
        name=request.name,
        prefix=prefix,
        secret_hash=_hash(secret),
        scopes=sorted(set(request.scopes)),
        created_by=uuid.UUID(creator.id),
        expires_at=request.expires_at,
    )
    uow.add(key)
    uow.flush()
    register_route(uow, RouteKind.API_KEY_PREFIX, prefix)
    read = ApiKeyRead.model_validate(key)
    AuditChain.append(
        uow,
        AuditEventType.API_KEY_CREATED,
        creator.audit_actor(),
        read.model_dump(mode="json", include={"id", "name", "prefix", "scopes", "expires_at"}),
    )
    return ApiKeyCreated(**read.model_dump(), secret=f"asep_{prefix}_{secret}")


def list_api_keys(uow: TenantUnitOfWork) -> list[ApiKeyRead]:
    return [ApiKeyRead.model_validate(key) for key in repository.list_api_keys(uow)]


def revoke_api_key(uow: TenantUnitOfWork, key_id: uuid.UUID, actor: Actor) -> ApiKeyRead:
    key = repository.get_api_key(uow, key_id)
    if key is None:
        raise NotFound("API key not found.")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        uow.flush()
        AuditChain.append(
            uow, AuditEventType.API_KEY_REVOKED, actor, {"id": str(key.id), "prefix": key.prefix}
        )
    return ApiKeyRead.model_validate(key)


@dataclass(frozen=True)
class _CachedKey:
    principal: Principal
    expires_at: datetime | None
    cached_at: float


class ApiKeyAuthenticator:
    def __init__(self, cache_seconds: float = CACHE_SECONDS) -> None:
        self._cache_seconds = cache_seconds
        self._cache: dict[bytes, _CachedKey] = {}
        self._lock = threading.Lock()

    @staticmethod
    def looks_like_key(credential: str) -> bool:
        return credential.startswith("asep_")

    def authenticate(self, credential: str) -> Principal:
        match = KEY_PATTERN.fullmatch(credential)
        if match is None:
            raise TokenRejected("malformed api key")
        prefix, secret = match.groups()
        digest = hashlib.sha256(credential.encode()).digest()
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and now - cached.cached_at < self._cache_seconds:
            if cached.expires_at is not None and cached.expires_at <= datetime.now(UTC):
                raise TokenRejected("api key expired")
            return cached.principal
        principal, expires_at = self._verify(prefix, secret)
        with self._lock:
            self._cache[digest] = _CachedKey(principal, expires_at, now)
        return principal

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()

    @staticmethod
    def _verify(prefix: str, secret: str) -> tuple[Principal, datetime | None]:
        with directory_unit_of_work() as duow:
            tenant_id = resolve_tenant(duow, RouteKind.API_KEY_PREFIX, prefix)
        if tenant_id is None:
            raise TokenRejected("unknown api key")
        with tenant_unit_of_work(tenant_id) as uow:
            key = repository.find_api_key_by_prefix(uow, prefix)
            if key is None or not hmac.compare_digest(key.secret_hash, _hash(secret)):
                raise TokenRejected("unknown api key")
            now = datetime.now(UTC)
            if key.revoked_at is not None:
                raise TokenRejected("api key revoked")
            if key.expires_at is not None and key.expires_at <= now:
                raise TokenRejected("api key expired")
            creator = uow.get(User, key.created_by)
            if creator is None or creator.status != "active":
                raise TokenRejected("api key creator is no longer active")
            if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
                key.last_used_at = now
            # Never more than the creator may do today, whatever the key's scopes say.
            allowed = {p.value for p in role_permissions(Role(creator.role))}
            principal = Principal(
                kind=PrincipalKind.API_KEY,
                id=str(key.id),
                tenant_id=tenant_id,
                permissions=frozenset(key.scopes) & allowed,
                display=f"api key {key.name} ({key.prefix})",
            )
            return principal, key.expires_at

"""HubSpot over the official `hubspot-api-client`: limits, retries and errors in one place.

Every request first takes a slot from the tenant's limiter. Then:
- 429: HubSpot refused before doing anything, so the request is always safe to repeat; we
  wait its Retry-After (or the rest of the rolling window) and send it again.
- 5xx and network failures: retried with backoff only when the request is idempotent (reads,
  upserts by unique key, updates, associations). A create that fails this way may have
  happened; the caller reconciles by our idempotency marker instead of sending it again.
- 401: the access token is no longer accepted (expired or the app was uninstalled).
- other 4xx: HubSpot refused the data; never retried, surfaced with HubSpot's own message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    AssociationSpec as AssocSpecV4,
)
from hubspot.crm.associations.v4 import (
    BatchInputPublicAssociationMultiPost,
    PublicAssociationMultiPost,
)
from hubspot.crm.associations.v4 import (
    PublicObjectId as AssocObjectId,
)
from hubspot.crm.objects import (
    AssociationSpec,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicAssociationsForObject,
    PublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectBatchInputUpsert,
    SimplePublicObjectId,
)
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate
from urllib3.exceptions import HTTPError as TransportError
from urllib3.util.retry import Retry

from shared.crm.port import CrmRejected, CrmUnavailable
from shared.crm.ratelimit import TenantLimiter

log = logging.getLogger("asep.crm.hubspot")

T = TypeVar("T")
BATCH_SIZE = 100  # HubSpot's batch endpoints take at most 100 inputs.
SEARCH_PAGE = 100
MARKER_PROPERTY = "asep_idempotency_key"
MARKER_GROUP = "asep"


class CrmConflict(CrmRejected):
    """409: a unique property value (email, our marker) already belongs to a record."""


class CrmAuthExpired(CrmUnavailable):
    """401: the token is not accepted; refresh it, or the account disconnected the app."""


class CrmAmbiguous(CrmUnavailable):
    """A non-idempotent request failed in a way that may have applied it: reconcile first."""


@dataclass(frozen=True)
class HsObject:
    id: str
    properties: dict[str, str | None]
    new: bool = False


@dataclass(frozen=True)
class Association:
    from_id: str
    to_id: str
    type_id: int
    category: str = "HUBSPOT_DEFINED"


@dataclass(frozen=True)
class Pipeline:
    id: str
    label: str
    stages: dict[str, str]


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class TokenInfo:
    hub_id: str
    scopes: tuple[str, ...]


@dataclass
class RetryPolicy:
    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    # Without a Retry-After header, wait out the rest of HubSpot's rolling window.
    default_retry_after: float = 10.0
    sleep: Callable[[float], None] = time.sleep


def hubspot_message(body: Any) -> str:
    """HubSpot's error text: `message`, with the first detail when it adds something."""
    try:
        parsed = json.loads(body) if isinstance(body, str | bytes) else body
    except ValueError:
        return str(body)[:500] if body else "no detail"
    if not isinstance(parsed, dict):
        return "no detail"
    message = str(parsed.get("message") or parsed.get("category") or "no detail")
    details = parsed.get("errors") or []
    if details and isinstance(details[0], dict) and details[0].get("message"):
        detail = str(details[0]["message"])
        if detail not in message:
            message = f"{message}: {detail}"
    return message[:1000]


def _retry_after(headers: Any, default: float) -> float:
    value = headers.get("Retry-After") if headers else None
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default


def _chunks(items: Sequence[T], size: int = BATCH_SIZE) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class HubSpotApi:
    """One tenant's HubSpot account. Build once per unit of work; API objects are cached
    because each `client.crm...` property builds a new connection pool."""

    def __init__(
        self,
        access_token: str | None,
        limiter: TenantLimiter,
        *,
        host: str = "https://api.hubapi.com",
        retry: RetryPolicy | None = None,
    ) -> None:
        # urllib3 must not retry on its own: a silent resend of a create duplicates it.
        self._client = HubSpot(access_token=access_token, retry=Retry(total=0), host=host)
        self._limiter = limiter
        self._retry = retry or RetryPolicy()
        self._apis: dict[str, Any] = {}
        self.requests = 0
        self.throttled = 0

    def _api(self, name: str, build: Callable[[], Any]) -> Any:
        if name not in self._apis:
            self._apis[name] = build()
        return self._apis[name]

    @property
    def _basic(self) -> Any:
        return self._api("basic", lambda: self._client.crm.objects.basic_api)

    @property
    def _batch(self) -> Any:
        return self._api("batch", lambda: self._client.crm.objects.batch_api)

    @property
    def _search(self) -> Any:
        return self._api("search", lambda: self._client.crm.objects.search_api)

    @property
    def _assoc(self) -> Any:
        return self._api("assoc", lambda: self._client.crm.associations.v4.batch_api)

    @property
    def _assoc_basic(self) -> Any:
        return self._api("assoc_basic", lambda: self._client.crm.associations.v4.basic_api)

    # -- the one call path -----------------------------------------------------------------

    def call(self, send: Callable[[], T], *, idempotent: bool, search: bool = False) -> T:
        attempt = 0
        while True:
            attempt += 1
            self._limiter.before_request(search=search)
            self.requests += 1
            try:
                return send()
            except TransportError as exc:
                if not idempotent:
                    raise CrmAmbiguous(f"HubSpot did not answer: {type(exc).__name__}") from exc
                failure: CrmUnavailable = CrmUnavailable(
                    f"HubSpot did not answer: {type(exc).__name__}"
                )
                cause: Exception = exc
            except Exception as exc:
                status = getattr(exc, "status", None)
                if not isinstance(status, int):
                    raise
                message = hubspot_message(getattr(exc, "body", None))
                if status == 429:
                    self.throttled += 1
                    wait = _retry_after(
                        getattr(exc, "headers", None), self._retry.default_retry_after
                    )
                    self._limiter.general.pause_until(wait)
                    if attempt >= self._retry.max_attempts:
                        raise CrmUnavailable(f"HubSpot rate limit: {message}") from exc
                    continue
                if status == 401:
                    raise CrmAuthExpired(f"HubSpot refused the token: {message}") from exc
                if status == 409:
                    raise CrmConflict(message) from exc
                if 400 <= status < 500:
                    raise CrmRejected(f"HubSpot {status}: {message}") from exc
                if not idempotent:
                    raise CrmAmbiguous(f"HubSpot {status}: {message}") from exc
                failure, cause = CrmUnavailable(f"HubSpot {status}: {message}"), exc
            if attempt >= self._retry.max_attempts:
                raise failure from cause
            delay = min(self._retry.backoff_cap, self._retry.backoff_base * 2 ** (attempt - 1))
            self._retry.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 (jitter)

    # -- objects ---------------------------------------------------------------------------

    @staticmethod
    def _objects(response: Any) -> list[HsObject]:
        return [
            HsObject(str(r.id), dict(r.properties or {}), bool(getattr(r, "new", False)))
            for r in response.results or []
        ]

    def batch_upsert(
        self, object_type: str, id_property: str, rows: Sequence[tuple[str, dict[str, str]]]
    ) -> list[HsObject]:
        found: list[HsObject] = []
        for chunk in _chunks(rows):
            body = BatchInputSimplePublicObjectBatchInputUpsert(
                inputs=[
                    SimplePublicObjectBatchInputUpsert(
                        id=key, id_property=id_property, properties=p
                    )
                    for key, p in chunk
                ]
            )
            response = self.call(partial(self._batch.upsert, object_type, body), idempotent=True)
            found.extend(self._objects(response))
        return found

    def batch_create(
        self,
        object_type: str,
        rows: Sequence[tuple[dict[str, str], Sequence[Association]]],
    ) -> list[HsObject]:
        """At most 100 rows; not idempotent on its own (the caller's marker makes it so)."""
        assert len(rows) <= BATCH_SIZE
        body = BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[
                SimplePublicObjectBatchInputForCreate(
                    properties=properties,
                    associations=[
                        PublicAssociationsForObject(
                            to=PublicObjectId(id=a.to_id),
                            types=[
                                AssociationSpec(
                                    association_category=a.category, association_type_id=a.type_id
                                )
                            ],
                        )
                        for a in associations
                    ],
                )
                for properties, associations in rows
            ]
        )
        return self._objects(
            self.call(lambda: self._batch.create(object_type, body), idempotent=False)
        )

    def batch_read(
        self,
        object_type: str,
        ids: Sequence[str],
        *,
        id_property: str | None,
        properties: list[str],
    ) -> list[HsObject]:
        found: list[HsObject] = []
        for chunk in _chunks(ids):
            body = BatchReadInputSimplePublicObjectId(
                inputs=[SimplePublicObjectId(id=i) for i in chunk],
                id_property=id_property,
                properties=properties,
                properties_with_history=[],
            )
            response = self.call(
                partial(self._batch.read, object_type, body, archived=False),
                idempotent=True,
            )
            found.extend(self._objects(response))
        return found

    def batch_update(self, object_type: str, rows: Sequence[tuple[str, dict[str, str]]]) -> None:
        for chunk in _chunks(rows):
            body = BatchInputSimplePublicObjectBatchInput(
                inputs=[SimplePublicObjectBatchInput(id=i, properties=p) for i, p in chunk]
            )
            self.call(partial(self._batch.update, object_type, body), idempotent=True)

    def search_in(
        self, object_type: str, property_name: str, values: Sequence[str], properties: list[str]
    ) -> list[HsObject]:
        """Records whose `property_name` is one of `values` (CRM search: 5 requests/s)."""
        found: list[HsObject] = []
        for chunk in _chunks(values):
            after: str | None = None
            while True:
                request = PublicObjectSearchRequest(
                    filter_groups=[
                        FilterGroup(
                            filters=[
                                Filter(
                                    property_name=property_name, operator="IN", values=list(chunk)
                                )
                            ]
                        )
                    ],
                    properties=properties,
                    limit=SEARCH_PAGE,
                    after=after,
                    sorts=[],
                )
                response = self.call(
                    partial(self._search.do_search, object_type, request),
                    idempotent=True,
                    search=True,
                )
                found.extend(self._objects(response))
                paging = response.paging
                after = paging.next.after if paging and paging.next else None
                if not after:
                    break
        return found

    def list_page(
        self, object_type: str, *, after: str | None, limit: int, properties: list[str]
    ) -> tuple[list[HsObject], str | None]:
        response = self.call(
            lambda: self._basic.get_page(
                object_type, limit=limit, after=after, properties=properties, archived=False
            ),
            idempotent=True,
        )
        paging = response.paging
        return self._objects(response), (paging.next.after if paging and paging.next else None)

    # -- associations (v4) -----------------------------------------------------------------

    def associate(self, from_type: str, to_type: str, links: Sequence[Association]) -> None:
        """v4 batch create: associating an existing pair again is a no-op at HubSpot."""
        for chunk in _chunks(links):
            body = BatchInputPublicAssociationMultiPost(
                inputs=[
                    PublicAssociationMultiPost(
                        _from=AssocObjectId(id=link.from_id),
                        to=AssocObjectId(id=link.to_id),
                        types=[
                            AssocSpecV4(
                                association_category=link.category,
                                association_type_id=link.type_id,
                            )
                        ],
                    )
                    for link in chunk
                ]
            )
            self.call(partial(self._assoc.create, from_type, to_type, body), idempotent=True)

    def associations(self, from_type: str, from_id: str, to_type: str) -> dict[str, list[str]]:
        """to_id -> labels (unlabeled associations have a null label)."""
        found: dict[str, list[str]] = {}
        after: str | None = None
        while True:
            response = self.call(
                partial(
                    self._assoc_basic.get_page, from_type, from_id, to_type, after=after, limit=500
                ),
                idempotent=True,
            )
            for item in response.results or []:
                found[str(item.to_object_id)] = [
                    t.label for t in item.association_types or [] if t.label
                ]
            paging = response.paging
            after = paging.next.after if paging and paging.next else None
            if not after:
                return found

    # -- account setup ---------------------------------------------------------------------

    def deal_pipelines(self) -> list[Pipeline]:
        api = self._api("pipelines", lambda: self._client.crm.pipelines.pipelines_api)
        response = self.call(lambda: api.get_all("deals"), idempotent=True)
        return [
            Pipeline(str(p.id), str(p.label), {str(s.id): str(s.label) for s in p.stages or []})
            for p in response.results or []
        ]

    def ensure_marker_property(self, object_type: str) -> None:
        """Our idempotency marker, unique per object type, so a repeated create is a 409."""
        groups = self._api("groups", lambda: self._client.crm.properties.groups_api)
        group = PropertyGroupCreate(name=MARKER_GROUP, label="ShaunAI ASEP", display_order=-1)
        with contextlib.suppress(CrmConflict):
            self.call(lambda: groups.create(object_type, group), idempotent=True)
        api = self._api("properties", lambda: self._client.crm.properties.core_api)
        body = PropertyCreate(
            name=MARKER_PROPERTY,
            label="ASEP idempotency key",
            type="string",
            field_type="text",
            group_name=MARKER_GROUP,
            has_unique_value=True,
            hidden=True,
            form_field=False,
            description="Set by ShaunAI ASEP; identifies records ASEP created.",
        )
        try:
            self.call(lambda: api.create(object_type, body), idempotent=True)
        except CrmConflict:
            return


class HubSpotOAuth:
    """The OAuth endpoints (no bearer token). Token values are never logged."""

    def __init__(self, client_id: str, client_secret: str, *, host: str) -> None:
        self._client = HubSpot(retry=Retry(total=0), host=host)
        self._client_id = client_id
        self._client_secret = client_secret
        self._tokens = self._client.oauth.tokens_api
        self._info = self._client.oauth.access_tokens_api

    def _grant(self, **form: str) -> TokenGrant:
        try:
            response = self._tokens.create(
                client_id=self._client_id, client_secret=self._client_secret, **form
            )
        except TransportError as exc:
            raise CrmUnavailable(f"HubSpot OAuth did not answer: {type(exc).__name__}") from exc
        except Exception as exc:
            status = getattr(exc, "status", None)
            if not isinstance(status, int):
                raise
            message = hubspot_message(getattr(exc, "body", None))
            if status in (400, 401, 403):
                raise CrmRejected(f"HubSpot OAuth {status}: {message}") from exc
            raise CrmUnavailable(f"HubSpot OAuth {status}: {message}") from exc
        return TokenGrant(
            str(response.access_token), str(response.refresh_token), int(response.expires_in)
        )

    def exchange_code(self, code: str, redirect_uri: str) -> TokenGrant:
        return self._grant(grant_type="authorization_code", code=code, redirect_uri=redirect_uri)

    def refresh(self, refresh_token: str) -> TokenGrant:
        return self._grant(grant_type="refresh_token", refresh_token=refresh_token)

    def token_info(self, access_token: str) -> TokenInfo:
        try:
            response = self._info.get(access_token)
        except Exception as exc:
            status = getattr(exc, "status", None)
            if not isinstance(status, int):
                raise
            raise CrmRejected(
                f"HubSpot OAuth {status}: {hubspot_message(getattr(exc, 'body', None))}"
            ) from exc
        return TokenInfo(str(response.hub_id), tuple(response.scopes or ()))

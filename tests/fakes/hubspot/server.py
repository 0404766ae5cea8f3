"""A local fake HubSpot: a real HTTP server (Starlette on uvicorn, in a thread) with
HubSpot's URL paths and JSON shapes, checked against HubSpot's public API reference
(developers.hubspot.com: CRM v3 objects and batch endpoints, search, v4 associations,
pipelines, properties, OAuth v1) and against `hubspot-api-client`'s generated models, which
refuse responses missing required fields.

Behaviour that matters to a client: unique properties (contact email, any property created
with hasUniqueValue) give 409 CONFLICT; unknown properties, bad emails and unknown deal
stages give 400 VALIDATION_ERROR in HubSpot's error format; a rolling-window limit per
account gives 429 RATE_LIMIT with Retry-After; `after` cursors page lists and searches;
association types carry labels. Faults are injectable: a share of requests answered 429 or
5xx, half of the 5xx *after* applying the write (the ambiguous case).
"""

from __future__ import annotations

import itertools
import json
import math
import random
import secrets
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

OBJECT_TYPE_IDS = {
    "contacts": "0-1",
    "companies": "0-2",
    "deals": "0-3",
    "tasks": "0-27",
    "notes": "0-46",
    "meetings": "0-47",
    "emails": "0-49",
}
BASE_PROPERTIES: dict[str, set[str]] = {
    "contacts": {"email", "firstname", "lastname", "jobtitle", "lifecyclestage", "hs_email_optout"},
    "companies": {"domain", "name", "website"},
    "deals": {"dealname", "amount", "closedate", "pipeline", "dealstage", "hubspot_owner_id"},
    "emails": {
        "hs_timestamp",
        "hs_email_subject",
        "hs_email_text",
        "hs_email_direction",
        "hs_email_status",
    },
    "notes": {"hs_timestamp", "hs_note_body"},
    "tasks": {"hs_timestamp", "hs_task_subject", "hs_task_body", "hs_task_status"},
    "meetings": {
        "hs_timestamp",
        "hs_meeting_title",
        "hs_meeting_start_time",
        "hs_meeting_end_time",
        "hs_meeting_body",
        "hs_meeting_outcome",
    },
}
# HubSpot-defined association types (v4): (from, to) -> {typeId: label or None}.
ASSOCIATION_TYPES: dict[tuple[str, str], dict[int, str | None]] = {
    ("contacts", "companies"): {279: None, 1: "Primary"},
    ("companies", "contacts"): {280: None, 2: "Primary"},
    ("deals", "contacts"): {3: None},
    ("contacts", "deals"): {4: None},
    ("deals", "companies"): {341: None, 5: "Primary"},
    ("companies", "deals"): {342: None, 6: "Primary"},
    ("emails", "contacts"): {198: None},
    ("emails", "deals"): {210: None},
    ("notes", "contacts"): {202: None},
    ("notes", "deals"): {214: None},
    ("tasks", "contacts"): {204: None},
    ("tasks", "deals"): {216: None},
    ("meetings", "contacts"): {200: None},
    ("meetings", "deals"): {212: None},
}
INVERSE_TYPE = {279: 280, 1: 2, 3: 4, 341: 342, 5: 6, 280: 279, 2: 1, 4: 3, 342: 341, 6: 5}
DEFAULT_PIPELINES = {
    "default": (
        "Sales Pipeline",
        [
            ("appointmentscheduled", "Appointment Scheduled"),
            ("qualifiedtobuy", "Qualified To Buy"),
            ("presentationscheduled", "Presentation Scheduled"),
            ("decisionmakerboughtin", "Decision Maker Bought-In"),
            ("contractsent", "Contract Sent"),
            ("closedwon", "Closed Won"),
            ("closedlost", "Closed Lost"),
        ],
    ),
    "outbound": ("Outbound", [("replied", "Replied"), ("meeting", "Meeting booked")]),
}


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _error(
    status: int,
    message: str,
    category: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _rate_limited(policy: str, retry_after: str) -> JSONResponse:
    return _error(
        429,
        f"You have reached your {policy.lower()} limit.",
        "RATE_LIMITS",
        headers={"Retry-After": retry_after},
        errorType="RATE_LIMIT",
        policyName=policy,
    )


def _batch(results: list[dict[str, Any]], started: str, status_code: int = 200) -> JSONResponse:
    """HubSpot's BatchResponse envelope, the same for every batch endpoint."""
    return JSONResponse(
        {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _now_iso(),
        },
        status_code=status_code,
    )


class HubSpotError(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


def _validation(errors: list[dict[str, Any]]) -> HubSpotError:
    return HubSpotError(
        _error(
            400,
            "Property values were not valid: " + json.dumps(errors),
            "VALIDATION_ERROR",
            errors=[{"message": e["message"], "code": e["error"]} for e in errors],
        )
    )


@dataclass
class Token:
    portal_id: int
    scopes: list[str]
    expires_at: float
    refresh_token: str


@dataclass
class Stats:
    requests: int = 0
    enforced_429: int = 0
    injected_429: int = 0
    injected_5xx: int = 0
    applied_then_5xx: int = 0
    by_route: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class FakeHubSpot:
    def __init__(
        self,
        *,
        max_requests: int = 190,
        window_seconds: float = 10.0,
        search_per_second: int = 5,
        fault_rate: float = 0.0,
        seed: int = 7,
        retry_after: str = "1",
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",  # noqa: S107 (the fake's own)
        portal_id: int = 4242,
        token_ttl_seconds: int = 1800,
    ) -> None:
        self.max_requests = max_requests
        self.window_seconds = window_seconds
        self.search_per_second = search_per_second
        self.fault_rate = fault_rate
        self.retry_after = retry_after
        self.client_id = client_id
        self.client_secret = client_secret
        self.portal_id = portal_id
        self.token_ttl_seconds = token_ttl_seconds
        self._random = random.Random(seed)
        self._ids = itertools.count(1001)
        self.objects: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.unique: dict[str, set[str]] = {t: set() for t in OBJECT_TYPE_IDS}
        self.unique["contacts"].add("email")
        self._index: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
        self.custom_properties: dict[str, set[str]] = defaultdict(set)
        self.groups: dict[str, set[str]] = defaultdict(set)
        # (from_type, from_id, to_type) -> {to_id: {typeId}}
        self.associations: dict[tuple[str, str, str], dict[str, set[int]]] = defaultdict(dict)
        self.custom_labels: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
        self.pipelines = {k: (v[0], list(v[1])) for k, v in DEFAULT_PIPELINES.items()}
        self.codes: dict[str, int] = {}
        self.tokens: dict[str, Token] = {}
        self.refresh_tokens: dict[str, int] = {}
        self.revoked_portals: set[int] = set()
        self.stats = Stats()
        self._sent: dict[int, deque[float]] = defaultdict(deque)
        self._searches: dict[int, deque[float]] = defaultdict(deque)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeHubSpot:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        config = uvicorn.Config(
            self.app(), host="127.0.0.1", port=port, log_level="warning", loop="asyncio"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake HubSpot did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    # -- test controls ---------------------------------------------------------------------

    def authorize(self, portal_id: int | None = None) -> str:
        """What a user approving the app in HubSpot produces: a one-time code."""
        code = secrets.token_urlsafe(16)
        self.codes[code] = portal_id or self.portal_id
        return code

    def revoke(self, portal_id: int | None = None) -> None:
        """The customer uninstalls the app: every token of the account stops working."""
        self.revoked_portals.add(portal_id or self.portal_id)

    def count(self, object_type: str) -> int:
        return len(self.objects[object_type])

    def duplicates(self, object_type: str, property_name: str) -> int:
        values = [
            o["properties"].get(property_name)
            for o in self.objects[object_type].values()
            if o["properties"].get(property_name)
        ]
        return len(values) - len(set(values))

    def add_label(self, from_type: str, to_type: str, type_id: int, label: str) -> None:
        self.custom_labels[(from_type, to_type)][type_id] = label

    # -- the app ---------------------------------------------------------------------------

    def app(self) -> Starlette:
        # (method, path, handler): one row per HubSpot endpoint, its path spelled out as in
        # HubSpot's reference; all but OAuth go through _wrap (auth, limits, faults).
        api: list[tuple[str, str, Any]] = [
            ("GET", "/crm/v3/objects/{object_type}", self._list),
            ("POST", "/crm/v3/objects/{object_type}", self._create),
            ("POST", "/crm/v3/objects/{object_type}/batch/create", self._batch_create),
            ("POST", "/crm/v3/objects/{object_type}/batch/read", self._batch_read),
            ("POST", "/crm/v3/objects/{object_type}/batch/update", self._batch_update),
            ("POST", "/crm/v3/objects/{object_type}/batch/upsert", self._batch_upsert),
            ("GET", "/crm/v3/objects/{object_type}/{object_id}", self._get),
            ("PATCH", "/crm/v3/objects/{object_type}/{object_id}", self._patch),
            (
                "PUT",
                "/crm/v4/objects/{object_type}/{object_id}/associations/{to_type}/{to_id}",
                self._associate_one,
            ),
            (
                "GET",
                "/crm/v4/objects/{object_type}/{object_id}/associations/{to_type}",
                self._association_page,
            ),
            (
                "POST",
                "/crm/v4/associations/{object_type}/{to_type}/batch/create",
                self._associate_batch,
            ),
            ("GET", "/crm/v3/pipelines/{object_type}", self._pipelines),
            ("POST", "/crm/v3/properties/{object_type}/groups", self._create_group),
            ("POST", "/crm/v3/properties/{object_type}", self._create_property),
        ]
        search = self._wrap(self._search, search=True)
        routes = [
            Route("/oauth/v1/token", self._oauth_token, methods=["POST"]),
            Route("/oauth/v1/access-tokens/{token}", self._token_info, methods=["GET"]),
            Route("/crm/v3/objects/{object_type}/search", search, methods=["POST"]),
            *(Route(path, self._wrap(handler), methods=[method]) for method, path, handler in api),
        ]
        return Starlette(routes=routes)

    # -- gatekeeping: auth, limits, faults -------------------------------------------------

    def _portal(self, request: Request) -> int:
        header = request.headers.get("authorization", "")
        token = self.tokens.get(header.removeprefix("Bearer ").strip())
        if token is None or token.portal_id in self.revoked_portals:
            raise HubSpotError(
                _error(
                    401,
                    "Authentication credentials not found. This API supports OAuth 2.0 "
                    "authentication.",
                    "INVALID_AUTHENTICATION",
                )
            )
        if token.expires_at < time.time():
            raise HubSpotError(
                _error(
                    401, "The OAuth token used to make this call expired.", "EXPIRED_AUTHENTICATION"
                )
            )
        return token.portal_id

    def _limit(self, log: deque[float], limit: int, window: float, policy: str) -> None:
        now = time.monotonic()
        while log and now - log[0] >= window:
            log.popleft()
        if len(log) >= limit:
            self.stats.enforced_429 += 1
            wait = max(0.0, log[0] + window - now)
            raise HubSpotError(_rate_limited(policy, str(max(1, math.ceil(wait)))))
        log.append(now)

    def _wrap(self, handler: Any, *, search: bool = False) -> Any:
        async def endpoint(request: Request) -> Response:
            self.stats.requests += 1
            self.stats.by_route[f"{request.method} {request.url.path}"] += 1
            try:
                portal = self._portal(request)
                self._limit(
                    self._sent[portal],
                    self.max_requests,
                    self.window_seconds,
                    "TEN_SECONDLY_ROLLING",
                )
                if search:
                    self._limit(self._searches[portal], self.search_per_second, 1.0, "SECONDLY")
                fault = self._random.random() < self.fault_rate
                kind = self._random.choice(("429", "5xx-before", "5xx-after")) if fault else ""
                if kind == "429":
                    self.stats.injected_429 += 1
                    return _rate_limited("TEN_SECONDLY_ROLLING", self.retry_after)
                if kind == "5xx-before":
                    self.stats.injected_5xx += 1
                    return _error(502, "Bad gateway", "INTERNAL_ERROR")
                raw = await request.body()
                body = json.loads(raw) if raw else None
                response: Response = handler(request, body)
                if kind == "5xx-after":
                    self.stats.injected_5xx += 1
                    self.stats.applied_then_5xx += 1
                    return _error(504, "The request timed out", "INTERNAL_ERROR")
                return response
            except HubSpotError as error:
                return error.response

        return endpoint

    # -- objects ---------------------------------------------------------------------------

    def _type(self, request: Request) -> str:
        object_type = request.path_params["object_type"]
        if object_type not in OBJECT_TYPE_IDS:
            raise HubSpotError(
                _error(400, f"Unable to infer object type from: {object_type}", "VALIDATION_ERROR")
            )
        return str(object_type)

    def _shape(self, record: dict[str, Any], properties: list[str] | None = None) -> dict[str, Any]:
        props = record["properties"]
        if properties:
            props = {k: props.get(k) for k in properties} | {"hs_object_id": record["id"]}
        return {
            "id": record["id"],
            "properties": props,
            "createdAt": record["createdAt"],
            "updatedAt": record["updatedAt"],
            "archived": False,
        }

    def _validate(self, object_type: str, properties: dict[str, Any]) -> None:
        errors = []
        known = BASE_PROPERTIES[object_type] | self.custom_properties[object_type]
        for name, value in properties.items():
            if name not in known:
                errors.append(
                    {
                        "isValid": False,
                        "message": f'Property "{name}" does not exist',
                        "error": "PROPERTY_DOESNT_EXIST",
                        "name": name,
                    }
                )
            elif name == "email" and (not isinstance(value, str) or "@" not in value):
                errors.append(
                    {
                        "isValid": False,
                        "message": f"Email address {value} is invalid",
                        "error": "INVALID_EMAIL",
                        "name": name,
                    }
                )
        if object_type == "deals" and ("dealstage" in properties or "pipeline" in properties):
            pipeline = self.pipelines.get(str(properties.get("pipeline", "default")))
            stage = properties.get("dealstage")
            if pipeline is None or (stage is not None and stage not in dict(pipeline[1])):
                errors.append(
                    {
                        "isValid": False,
                        "message": f"{stage} was not one of the allowed options",
                        "error": "INVALID_OPTION",
                        "name": "dealstage",
                    }
                )
        if errors:
            raise _validation(errors)

    def _owner_of(self, object_type: str, name: str, value: Any) -> str | None:
        if name in self.unique[object_type]:
            return self._index[(object_type, name)].get(str(value).lower())
        for record in self.objects[object_type].values():
            current = record["properties"].get(name)
            if current is not None and str(current).lower() == str(value).lower():
                return str(record["id"])
        return None

    def _set(self, object_type: str, record: dict[str, Any], properties: dict[str, Any]) -> None:
        """Write properties, keeping the unique-value index current."""
        for name, value in properties.items():
            if name in self.unique[object_type]:
                index = self._index[(object_type, name)]
                old = record["properties"].get(name)
                if old is not None:
                    index.pop(str(old).lower(), None)
                index[str(value).lower()] = record["id"]
            record["properties"][name] = str(value)

    def _check_unique(
        self, object_type: str, properties: dict[str, Any], own_id: str | None
    ) -> None:
        for name in self.unique[object_type]:
            value = properties.get(name)
            if value is None:
                continue
            owner = self._owner_of(object_type, name, value)
            if owner is not None and owner != own_id:
                message = (
                    f"Contact already exists. Existing ID: {owner}"
                    if name == "email"
                    else f"A {object_type[:-1]} with {name}={value} already exists. "
                    f"Existing ID: {owner}"
                )
                raise HubSpotError(_error(409, message, "CONFLICT"))

    def _insert(
        self, object_type: str, properties: dict[str, Any], associations: list[dict[str, Any]]
    ) -> dict[str, Any]:
        now = _now_iso()
        object_id = str(next(self._ids))
        record: dict[str, Any] = {
            "id": object_id,
            "properties": {"hs_object_id": object_id, "createdate": now},
            "createdAt": now,
            "updatedAt": now,
        }
        self._set(object_type, record, {**properties, "hs_lastmodifieddate": now})
        self.objects[object_type][object_id] = record
        for association in associations:
            to_id = str(association["to"]["id"])
            for spec in association["types"]:
                self._link(object_type, object_id, self._to_type(object_type, spec), to_id, spec)
        return record

    def _to_type(self, object_type: str, spec: dict[str, Any]) -> str:
        for (from_type, to_type), types in ASSOCIATION_TYPES.items():
            if from_type == object_type and spec["associationTypeId"] in types:
                return to_type
        raise HubSpotError(
            _error(
                400,
                f"association type {spec['associationTypeId']} is not valid from {object_type}",
                "VALIDATION_ERROR",
            )
        )

    def _check_associations(self, object_type: str, associations: list[dict[str, Any]]) -> None:
        for association in associations:
            for spec in association.get("types", []):
                to_type = self._to_type(object_type, spec)
                if str(association["to"]["id"]) not in self.objects[to_type]:
                    raise HubSpotError(
                        _error(
                            400,
                            f"{to_type} {association['to']['id']} does not exist",
                            "VALIDATION_ERROR",
                        )
                    )

    def _create(self, request: Request, body: Any) -> Response:
        object_type = self._type(request)
        properties = body.get("properties") or {}
        self._validate(object_type, properties)
        self._check_unique(object_type, properties, None)
        self._check_associations(object_type, body.get("associations") or [])
        record = self._insert(object_type, properties, body.get("associations") or [])
        return JSONResponse(self._shape(record), status_code=201)

    def _batch_create(self, request: Request, body: Any) -> Response:
        object_type = self._type(request)
        inputs = body.get("inputs") or []
        if len(inputs) > 100:
            raise HubSpotError(_error(400, "Batch input limit is 100", "VALIDATION_ERROR"))
        seen: dict[str, set[str]] = defaultdict(set)
        for item in inputs:
            properties = item.get("properties") or {}
            self._validate(object_type, properties)
            self._check_unique(object_type, properties, None)
            self._check_associations(object_type, item.get("associations") or [])
            for name in self.unique[object_type]:
                value = properties.get(name)
                if value is not None and value in seen[name]:
                    raise HubSpotError(
                        _error(409, f"Duplicate {name} {value} in batch", "CONFLICT")
                    )
                if value is not None:
                    seen[name].add(value)
        started = _now_iso()
        results = [
            self._shape(
                self._insert(object_type, i.get("properties") or {}, i.get("associations") or [])
            )
            for i in inputs
        ]
        self._random.shuffle(results)  # HubSpot does not promise input order
        return _batch(results, started, status_code=201)

    def _find(
        self, object_type: str, object_id: str, id_property: str | None
    ) -> dict[str, Any] | None:
        if id_property and id_property != "hs_object_id":
            found = self._owner_of(object_type, id_property, object_id)
            return self.objects[object_type].get(found) if found else None
        return self.objects[object_type].get(str(object_id))

    def _batch_read(self, request: Request, body: Any) -> Response:
        object_type = self._type(request)
        id_property = body.get("idProperty")
        if (
            id_property
            and id_property not in self.unique[object_type]
            and id_property != "hs_object_id"
        ):
            raise HubSpotError(
                _error(
                    400, f"{id_property} is not a unique identifier property", "VALIDATION_ERROR"
                )
            )
        started = _now_iso()
        results, missing = [], []
        for item in body.get("inputs") or []:
            record = self._find(object_type, str(item["id"]), id_property)
            if record is None:
                missing.append(str(item["id"]))
            else:
                results.append(self._shape(record, body.get("properties") or None))
        payload: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": _now_iso(),
        }
        if missing:
            payload["numErrors"] = 1
            payload["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not get some {object_type.upper()} objects, "
                    "they may be deleted or not exist.",
                    "context": {"ids": missing},
                    "links": {},
                    "errors": [],
                }
            ]
        return JSONResponse(payload, status_code=207 if missing else 200)

    def _batch_update(self, request: Request, body: Any) -> Response:
        object_type = self._type(request)
        started = _now_iso()
        results = []
        for item in body.get("inputs") or []:
            record = self.objects[object_type].get(str(item["id"]))
            if record is None:
                raise HubSpotError(
                    _error(404, f"Object {item['id']} not found", "OBJECT_NOT_FOUND")
                )
            properties = item.get("properties") or {}
            self._update(object_type, record, properties)
            results.append(self._shape(record))
        return _batch(results, started)

    def _batch_upsert(self, request: Request, body: Any) -> Response:
        object_type = self._type(request)
        started = _now_iso()
        results = []
        for item in body.get("inputs") or []:
            id_property = item.get("idProperty")
            if id_property not in self.unique[object_type]:
                raise HubSpotError(
                    _error(
                        400,
                        f"{id_property} is not a unique identifier property",
                        "VALIDATION_ERROR",
                    )
                )
            properties = {**(item.get("properties") or {}), id_property: item["id"]}
            record = self._find(object_type, str(item["id"]), id_property)
            if record is None:
                self._validate(object_type, properties)
                self._check_unique(object_type, properties, None)
                record, new = self._insert(object_type, properties, []), True
            else:
                self._update(object_type, record, properties)
                new = False
            results.append({**self._shape(record), "new": new})
        return _batch(results, started)

    def _matches(self, record: dict[str, Any], filters: list[dict[str, Any]]) -> bool:
        for condition in filters:
            value = record["properties"].get(condition["propertyName"])
            operator = condition["operator"]
            lowered = str(value).lower() if value is not None else None
            if operator == "EQ" and lowered != str(condition.get("value")).lower():
                return False
            if operator == "IN" and lowered not in {
                str(v).lower() for v in condition.get("values", [])
            }:
                return False
            if operator == "HAS_PROPERTY" and value is None:
                return False
        return True

    def _search(self, request: Request, body: Any) -> Response:
        object_type = self._type(request)
        groups = body.get("filterGroups") or []
        matched = [
            r
            for r in self.objects[object_type].values()
            if not groups or any(self._matches(r, g.get("filters", [])) for g in groups)
        ]
        matched.sort(key=lambda r: int(r["id"]))
        return self._page(
            matched,
            int(body.get("limit") or 10),
            body.get("after"),
            body.get("properties"),
            total=True,
        )

    def _page(
        self,
        records: list[dict[str, Any]],
        limit: int,
        after: str | None,
        properties: list[str] | None,
        *,
        total: bool = False,
    ) -> Response:
        start = int(after) if after else 0
        window = records[start : start + min(limit, 200)]
        payload: dict[str, Any] = {"results": [self._shape(r, properties) for r in window]}
        if total:
            payload["total"] = len(records)
        if start + len(window) < len(records):
            next_after = str(start + len(window))
            payload["paging"] = {"next": {"after": next_after, "link": f"?after={next_after}"}}
        return JSONResponse(payload)

    def _list(self, request: Request, body: Any) -> Response:
        object_type = self._type(request)
        records = sorted(self.objects[object_type].values(), key=lambda r: int(r["id"]))
        query = request.query_params
        properties = query.getlist("properties") or None
        return self._page(records, int(query.get("limit", 10)), query.get("after"), properties)

    def _addressed(self, request: Request) -> tuple[str, dict[str, Any]]:
        """The record at /objects/{object_type}/{object_id}[?idProperty=], or HubSpot's 404."""
        object_type = self._type(request)
        record = self._find(
            object_type, request.path_params["object_id"], request.query_params.get("idProperty")
        )
        if record is None:
            raise HubSpotError(
                _error(404, "Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND")
            )
        return object_type, record

    def _update(self, object_type: str, record: dict[str, Any], properties: dict[str, Any]) -> None:
        """Validate and apply a property update to an existing record (PATCH, batch update
        and the update side of upsert)."""
        self._validate(object_type, properties)
        self._check_unique(object_type, properties, record["id"])
        self._set(object_type, record, properties)
        record["updatedAt"] = _now_iso()

    def _get(self, request: Request, body: Any) -> Response:
        _, record = self._addressed(request)
        return JSONResponse(self._shape(record))

    def _patch(self, request: Request, body: Any) -> Response:
        object_type, record = self._addressed(request)
        self._update(object_type, record, body.get("properties") or {})
        return JSONResponse(self._shape(record))

    # -- associations (v4) -----------------------------------------------------------------

    def _label(self, from_type: str, to_type: str, type_id: int) -> tuple[str, str | None]:
        defined = ASSOCIATION_TYPES.get((from_type, to_type), {})
        if type_id in defined:
            return "HUBSPOT_DEFINED", defined[type_id]
        custom = self.custom_labels.get((from_type, to_type), {})
        if type_id in custom:
            return "USER_DEFINED", custom[type_id]
        raise HubSpotError(
            _error(
                400,
                f"{type_id} is not a valid association type between {from_type} and {to_type}",
                "VALIDATION_ERROR",
            )
        )

    def _link(
        self, from_type: str, from_id: str, to_type: str, to_id: str, spec: dict[str, Any]
    ) -> list[str]:
        type_id = int(spec["associationTypeId"])
        _, _label = self._label(from_type, to_type, type_id)
        for object_type, object_id in ((from_type, from_id), (to_type, to_id)):
            if object_id not in self.objects[object_type]:
                raise HubSpotError(
                    _error(404, f"{object_type} {object_id} not found", "OBJECT_NOT_FOUND")
                )
        self.associations[(from_type, from_id, to_type)].setdefault(to_id, set()).add(type_id)
        # Associations are bidirectional: the inverse type (or the unlabeled default) appears
        # when reading from the other side.
        inverse = INVERSE_TYPE.get(type_id)
        if inverse is None:
            inverse = next(iter(ASSOCIATION_TYPES.get((to_type, from_type), {})), None)
        if inverse is not None:
            self.associations[(to_type, to_id, from_type)].setdefault(from_id, set()).add(inverse)
        return [
            lbl
            for t in self.associations[(from_type, from_id, to_type)][to_id]
            if (lbl := self._label(from_type, to_type, t)[1])
        ]

    def _labels_pair(
        self, from_type: str, from_id: str, to_type: str, to_id: str, labels: list[str]
    ) -> dict[str, Any]:
        return {
            "fromObjectTypeId": OBJECT_TYPE_IDS[from_type],
            "fromObjectId": int(from_id),
            "toObjectTypeId": OBJECT_TYPE_IDS[to_type],
            "toObjectId": int(to_id),
            "labels": labels,
        }

    def _associate_one(self, request: Request, body: Any) -> Response:
        from_type, to_type = self._type(request), request.path_params["to_type"]
        from_id, to_id = request.path_params["object_id"], request.path_params["to_id"]
        labels: list[str] = []
        for spec in body or []:
            labels = self._link(from_type, from_id, to_type, to_id, spec)
        return JSONResponse(
            self._labels_pair(from_type, from_id, to_type, to_id, labels), status_code=201
        )

    def _associate_batch(self, request: Request, body: Any) -> Response:
        from_type, to_type = self._type(request), request.path_params["to_type"]
        started = _now_iso()
        results = []
        for item in body.get("inputs") or []:
            from_id, to_id = str(item["from"]["id"]), str(item["to"]["id"])
            labels: list[str] = []
            for spec in item.get("types") or []:
                labels = self._link(from_type, from_id, to_type, to_id, spec)
            results.append(self._labels_pair(from_type, from_id, to_type, to_id, labels))
        return _batch(results, started, status_code=201)

    def _association_page(self, request: Request, body: Any) -> Response:
        from_type, to_type = self._type(request), request.path_params["to_type"]
        linked = self.associations.get((from_type, request.path_params["object_id"], to_type), {})
        items = []
        for to_id in sorted(linked, key=int):
            types = []
            for type_id in sorted(linked[to_id]):
                category, label = self._label(from_type, to_type, type_id)
                types.append({"category": category, "typeId": type_id, "label": label})
            items.append({"toObjectId": int(to_id), "associationTypes": types})
        query = request.query_params
        start = int(query.get("after") or 0)
        limit = int(query.get("limit") or 500)
        window = items[start : start + limit]
        payload: dict[str, Any] = {"results": window}
        if start + len(window) < len(items):
            payload["paging"] = {"next": {"after": str(start + len(window)), "link": ""}}
        return JSONResponse(payload)

    # -- setup -----------------------------------------------------------------------------

    def _pipelines(self, request: Request, body: Any) -> Response:
        if request.path_params["object_type"] != "deals":
            return JSONResponse({"results": []})
        now = _now_iso()
        results = [
            {
                "id": pipeline_id,
                "label": label,
                "displayOrder": order,
                "archived": False,
                "createdAt": now,
                "updatedAt": now,
                "stages": [
                    {
                        "id": stage_id,
                        "label": stage_label,
                        "displayOrder": i,
                        "archived": False,
                        "createdAt": now,
                        "updatedAt": now,
                        "metadata": {},
                        "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                    }
                    for i, (stage_id, stage_label) in enumerate(stages)
                ],
            }
            for order, (pipeline_id, (label, stages)) in enumerate(self.pipelines.items())
        ]
        return JSONResponse({"results": results})

    def _create_group(self, request: Request, body: Any) -> Response:
        object_type = self._type(request)
        if body["name"] in self.groups[object_type]:
            raise HubSpotError(
                _error(409, f"A property group named {body['name']} already exists", "CONFLICT")
            )
        self.groups[object_type].add(body["name"])
        return JSONResponse(
            {
                "name": body["name"],
                "label": body["label"],
                "displayOrder": body.get("displayOrder", -1),
                "archived": False,
            },
            status_code=201,
        )

    def _create_property(self, request: Request, body: Any) -> Response:
        object_type = self._type(request)
        name = body["name"]
        if name in self.custom_properties[object_type] or name in BASE_PROPERTIES[object_type]:
            raise HubSpotError(
                _error(409, f"Property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
            )
        if body.get("groupName") not in self.groups[object_type]:
            raise HubSpotError(
                _error(
                    400,
                    f"Property group {body.get('groupName')} does not exist",
                    "VALIDATION_ERROR",
                )
            )
        self.custom_properties[object_type].add(name)
        if body.get("hasUniqueValue"):
            self.unique[object_type].add(name)
            self._index[(object_type, name)] = {
                str(r["properties"][name]).lower(): r["id"]
                for r in self.objects[object_type].values()
                if r["properties"].get(name) is not None
            }
        now = _now_iso()
        return JSONResponse(
            {
                "name": name,
                "label": body["label"],
                "type": body["type"],
                "fieldType": body["fieldType"],
                "groupName": body["groupName"],
                "description": body.get("description", ""),
                "options": [],
                "hasUniqueValue": bool(body.get("hasUniqueValue")),
                "hidden": bool(body.get("hidden")),
                "formField": bool(body.get("formField")),
                "createdAt": now,
                "updatedAt": now,
            },
            status_code=201,
        )

    # -- OAuth -----------------------------------------------------------------------------

    async def _oauth_token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return JSONResponse(
                {"status": "BAD_CLIENT_ID", "message": "missing or invalid client_id"},
                status_code=400,
            )
        grant = form.get("grant_type")
        if grant == "authorization_code":
            portal = self.codes.pop(form.get("code", ""), None)
            if portal is None:
                return JSONResponse(
                    {"status": "BAD_AUTH_CODE", "message": "missing or unknown auth code"},
                    status_code=400,
                )
        elif grant == "refresh_token":
            portal = self.refresh_tokens.get(form.get("refresh_token", ""))
            if portal is None or portal in self.revoked_portals:
                return JSONResponse(
                    {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"},
                    status_code=400,
                )
        else:
            return JSONResponse(
                {"status": "BAD_GRANT_TYPE", "message": "unsupported grant_type"}, status_code=400
            )
        if grant == "authorization_code":
            self.revoked_portals.discard(portal)
        access = "at-" + secrets.token_urlsafe(24)
        refresh = form.get("refresh_token") or "rt-" + secrets.token_urlsafe(24)
        self.refresh_tokens[refresh] = portal
        self.tokens[access] = Token(
            portal,
            ["oauth", "crm.objects.contacts.write"],
            time.time() + self.token_ttl_seconds,
            refresh,
        )
        return JSONResponse(
            {
                "access_token": access,
                "refresh_token": refresh,
                "expires_in": self.token_ttl_seconds,
                "token_type": "bearer",
            }
        )

    async def _token_info(self, request: Request) -> Response:
        token = self.tokens.get(request.path_params["token"])
        if token is None:
            return JSONResponse(
                {"status": "error", "message": "Token not found", "category": "OBJECT_NOT_FOUND"},
                status_code=404,
            )
        return JSONResponse(
            {
                "token": request.path_params["token"],
                "hub_id": token.portal_id,
                "user_id": 1,
                "user": "owner@example.com",
                "hub_domain": f"portal{token.portal_id}.example.com",
                "app_id": 77,
                "scopes": token.scopes,
                "token_type": "access",
                "expires_in": max(0, int(token.expires_at - time.time())),
            }
        )

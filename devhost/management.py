"""The Durable Functions HTTP management API (`HttpApiHandler.cs`) and the client binding JSON.

Served under the public webhook prefix and used as the client's `rpcBaseUrl`, so the real
`DurableOrchestrationClient` talks to it unmodified.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from psycopg_pool import AsyncConnectionPool

from devhost.app_loader import FunctionIndex
from devhost.orchestrations import execution_started_event, reset_instance
from devhost.protocol import EventType, RuntimeStatus, parse_timestamp
from devhost.store import SCHEMA, jsonb, utcnow

WEBHOOK_PATH = "/runtime/webhooks/durabletask"
CONNECTION_NAME = "Storage"

_STATUS_COLUMNS = (
    "instance_id, name, runtime_status, input, output, custom_status, created_at, last_updated_at"
)


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any = None  # JSON-serializable, or None for an empty body
    headers: tuple[tuple[str, str], ...] = ()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _loads(text: str | None) -> Any:
    return json.loads(text) if text is not None else None


class DurableHttpApi:
    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        index: FunctionIndex,
        *,
        hub_name: str,
        rpc_origin: str,
        notify: Callable[[str], None],
    ) -> None:
        self.pool = pool
        self.index = index
        self.hub_name = hub_name
        self.rpc_origin = rpc_origin.rstrip("/")
        self.notify = notify

    # -- binding and payloads -----------------------------------------------------------

    def _query_suffix(self) -> str:
        return f"taskHub={quote(self.hub_name)}&connection={CONNECTION_NAME}"

    def management_urls(self, origin: str, instance_id: str) -> dict[str, str]:
        base = f"{origin.rstrip('/')}{WEBHOOK_PATH}/instances/{instance_id}"
        q = self._query_suffix()
        return {
            "id": instance_id,
            "statusQueryGetUri": f"{base}?{q}",
            "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{q}",
            "terminatePostUri": f"{base}/terminate?reason={{text}}&{q}",
            "rewindPostUri": f"{base}/rewind?reason={{text}}&{q}",
            "purgeHistoryDeleteUri": f"{base}?{q}",
            "restartPostUri": f"{base}/restart?{q}",
            "suspendPostUri": f"{base}/suspend?reason={{text}}&{q}",
            "resumePostUri": f"{base}/resume?reason={{text}}&{q}",
        }

    def client_binding(self) -> str:
        """The durableClient binding value (`BindingHelper.cs`), pointing at this host."""
        webhook = f"{self.rpc_origin}{WEBHOOK_PATH}"
        q = self._query_suffix()
        return json.dumps(
            {
                "taskHubName": self.hub_name,
                "creationUrls": {
                    "createNewInstancePostUri": (
                        f"{webhook}/orchestrators/{{functionName}}[/{{instanceId}}]?{q}"
                    ),
                    "createAndWaitOnNewInstancePostUri": (
                        f"{webhook}/orchestrators/{{functionName}}[/{{instanceId}}]"
                        f"?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{q}"
                    ),
                },
                "managementUrls": self.management_urls(self.rpc_origin, "INSTANCEID"),
                "baseUrl": webhook,
                "requiredQueryStringParameters": q,
                "rpcBaseUrl": f"{webhook}/",
                "httpBaseUrl": "",
                "maxGrpcMessageSizeInBytes": 0,
                "grpcHttpClientTimeout": "00:01:40",
            }
        )

    def check_status(self, origin: str, instance_id: str) -> ApiResponse:
        urls = self.management_urls(origin, instance_id)
        return ApiResponse(
            202,
            urls,
            (("Location", urls["statusQueryGetUri"]), ("Retry-After", "10")),
        )

    # -- routing --------------------------------------------------------------------------

    async def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: bytes,
        content_type: str,
        origin: str,
    ) -> ApiResponse:
        parts = [p for p in path.strip("/").split("/") if p]
        if parts and parts[0] == "orchestrators" and len(parts) in (2, 3):
            if method != "POST":
                return ApiResponse(404)
            return await self.start(parts[1], parts[2] if len(parts) == 3 else None, body, origin)
        if not parts or parts[0] != "instances":
            return ApiResponse(404)
        if len(parts) == 1:
            if method == "GET":
                return await self.list_instances(query)
            if method == "DELETE":
                return await self.purge_by(query)
            return ApiResponse(404)
        instance_id = parts[1]
        if len(parts) == 2:
            if method == "GET":
                return await self.status(instance_id, query, origin)
            if method == "DELETE":
                return await self.purge(instance_id)
            return ApiResponse(404)
        action = parts[2]
        if method != "POST":
            return ApiResponse(404)
        reason = query.get("reason")
        match action:
            case "raiseEvent" if len(parts) == 4:
                return await self.raise_event(instance_id, parts[3], body, content_type)
            case "terminate":
                return await self.control(instance_id, EventType.EXECUTION_TERMINATED, reason)
            case "suspend":
                return await self.control(instance_id, EventType.EXECUTION_SUSPENDED, reason)
            case "resume":
                return await self.control(instance_id, EventType.EXECUTION_RESUMED, reason)
            case "restart":
                return await self.restart(instance_id, query, origin)
            case "rewind":
                return ApiResponse(
                    501,
                    {
                        "Message": "rewind is deprecated in Durable Functions and not emulated by"
                        " devhost"
                    },
                )
        return ApiResponse(404)

    # -- operations -----------------------------------------------------------------------

    async def start(
        self, function_name: str, instance_id: str | None, body: bytes, origin: str
    ) -> ApiResponse:
        entry = self.index.orchestrator(function_name)
        if entry is None:
            known = ", ".join(f"'{e.name}'" for e in self.index.orchestrators.values())
            message = (
                f"The function '{function_name}' doesn't exist, is disabled, or is not an "
                f"orchestrator function. Additional info: The following are the known "
                f"orchestrator functions: {known}."
            )
            return ApiResponse(404, {"Message": message, "ExceptionMessage": message})
        input_json: str | None = None
        if body.strip():
            try:
                input_json = json.dumps(json.loads(body))
            except (json.JSONDecodeError, UnicodeDecodeError):
                return ApiResponse(
                    400,
                    {"Message": "Invalid JSON content", "ExceptionMessage": "Invalid JSON content"},
                )
        instance_id = instance_id or uuid.uuid4().hex
        result = await self.create_instance(entry.name, instance_id, input_json)
        if result is not None:
            return result
        return self.check_status(origin, instance_id)

    async def create_instance(
        self, name: str, instance_id: str, input_json: str | None
    ) -> ApiResponse | None:
        now = utcnow()
        execution_id = uuid.uuid4().hex
        async with self.pool.connection() as conn, conn.transaction():
            existing = await (
                await conn.execute(
                    f"SELECT runtime_status FROM {SCHEMA}.instances WHERE instance_id = %s FOR"
                    " UPDATE",
                    (instance_id,),
                )
            ).fetchone()
            if existing is not None and existing[0] not in RuntimeStatus.TERMINAL:
                message = f"An Orchestration instance with the status {existing[0]} already exists."
                return ApiResponse(400, {"Message": message, "ExceptionMessage": message})
            await reset_instance(
                conn,
                instance_id=instance_id,
                name=name,
                execution_id=execution_id,
                input_json=input_json,
                now=now,
            )
            started = execution_started_event(
                name=name, instance_id=instance_id, execution_id=execution_id, input_json=input_json
            )
            await conn.execute(
                f"INSERT INTO {SCHEMA}.inbox (instance_id, execution_id, event, visible_at)"
                " VALUES (%s, %s, %s, %s)",
                (instance_id, execution_id, jsonb(started), now),
            )
        self.notify(instance_id)
        return None

    def _status_body(self, row: tuple[Any, ...], show_input: bool) -> dict[str, Any]:
        instance_id, name, status, input_json, output, custom, created, updated = row
        return {
            "name": name,
            "instanceId": instance_id,
            "runtimeStatus": status,
            "input": _loads(input_json) if show_input else None,
            "customStatus": _loads(custom),
            "output": _loads(output),
            "createdTime": _iso(created),
            "lastUpdatedTime": _iso(updated),
        }

    async def status(self, instance_id: str, query: dict[str, str], origin: str) -> ApiResponse:
        show_input = query.get("showInput", "true").lower() != "false"
        show_history = query.get("showHistory", "false").lower() == "true"
        show_history_output = query.get("showHistoryOutput", "false").lower() == "true"
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    f"SELECT {_STATUS_COLUMNS} FROM {SCHEMA}.instances WHERE instance_id = %s",
                    (instance_id,),
                )
            ).fetchone()
            if row is None:
                return ApiResponse(404)
            body = self._status_body(row, show_input)
            if show_history:
                events = await (
                    await conn.execute(
                        f"SELECT event FROM {SCHEMA}.history WHERE instance_id = %s ORDER BY idx",
                        (instance_id,),
                    )
                ).fetchall()
                body["historyEvents"] = [friendly_event(e[0], show_history_output) for e in events]
        status = body["runtimeStatus"]
        if (
            status == RuntimeStatus.FAILED
            and query.get("returnInternalServerErrorOnFailure", "").lower() == "true"
        ):
            return ApiResponse(500, body)
        if status in RuntimeStatus.TERMINAL:
            return ApiResponse(200, body)
        location = self.management_urls(origin, instance_id)["statusQueryGetUri"]
        return ApiResponse(202, body, (("Location", location), ("Retry-After", "5")))

    def _filters(self, query: dict[str, str]) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if query.get("createdTimeFrom"):
            clauses.append("created_at >= %s")
            params.append(parse_timestamp(query["createdTimeFrom"]))
        if query.get("createdTimeTo"):
            clauses.append("created_at <= %s")
            params.append(parse_timestamp(query["createdTimeTo"]))
        if query.get("runtimeStatus"):
            statuses = [s for s in query["runtimeStatus"].split(",") if s]
            clauses.append("runtime_status = ANY(%s)")
            params.append(statuses)
        if query.get("instanceIdPrefix"):
            clauses.append("instance_id LIKE %s")
            prefix = (
                query["instanceIdPrefix"]
                .replace("\\", "\\\\")
                .replace("%", "\\%")
                .replace("_", "\\_")
            )
            params.append(prefix + "%")
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return where, params

    async def list_instances(self, query: dict[str, str]) -> ApiResponse:
        show_input = query.get("showInput", "false").lower() == "true"
        where, params = self._filters(query)
        limit = ""
        if query.get("top", "").isdigit():
            limit = " LIMIT %s"
            params.append(int(query["top"]))
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    f"SELECT {_STATUS_COLUMNS} FROM {SCHEMA}.instances{where} ORDER BY"
                    f" created_at{limit}",
                    params,
                )
            ).fetchall()
        return ApiResponse(200, [self._status_body(r, show_input) for r in rows])

    async def raise_event(
        self, instance_id: str, event_name: str, body: bytes, content_type: str
    ) -> ApiResponse:
        async with self.pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    f"SELECT runtime_status FROM {SCHEMA}.instances WHERE instance_id = %s",
                    (instance_id,),
                )
            ).fetchone()
            if row is None:
                return ApiResponse(404)
            if row[0] in RuntimeStatus.TERMINAL:
                return ApiResponse(410)
            if content_type.split(";")[0].strip().lower() != "application/json":
                message = "Only application/json request content is supported"
                return ApiResponse(400, {"Message": message})
            try:
                text = body.decode("utf-8")
                json.loads(text)
            except (UnicodeDecodeError, json.JSONDecodeError):
                return ApiResponse(400, {"Message": "Invalid JSON content"})
            # Stored verbatim: a client that JSON-encodes twice makes the orchestrator see a
            # str, exactly as in Azure (azure-functions-durable-python#295).
            event = {"EventType": int(EventType.EVENT_RAISED), "Name": event_name, "Input": text}
            await conn.execute(
                f"INSERT INTO {SCHEMA}.inbox (instance_id, execution_id, event, visible_at)"
                " VALUES (%s, NULL, %s, %s)",
                (instance_id, jsonb(event), utcnow()),
            )
        self.notify(instance_id)
        return ApiResponse(202)

    async def control(self, instance_id: str, kind: EventType, reason: str | None) -> ApiResponse:
        async with self.pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    f"SELECT runtime_status FROM {SCHEMA}.instances WHERE instance_id = %s",
                    (instance_id,),
                )
            ).fetchone()
            if row is None:
                return ApiResponse(404)
            if row[0] in RuntimeStatus.TERMINAL:
                return ApiResponse(410)
            event: dict[str, Any] = {"EventType": int(kind)}
            if kind is EventType.EXECUTION_TERMINATED:
                event["Input"] = reason
            else:
                event["Reason"] = reason
            await conn.execute(
                f"INSERT INTO {SCHEMA}.inbox (instance_id, execution_id, event, visible_at)"
                " VALUES (%s, NULL, %s, %s)",
                (instance_id, jsonb(event), utcnow()),
            )
        self.notify(instance_id)
        return ApiResponse(202)

    async def restart(self, instance_id: str, query: dict[str, str], origin: str) -> ApiResponse:
        async with self.pool.connection() as conn:
            row = await (
                await conn.execute(
                    f"SELECT name, input FROM {SCHEMA}.instances WHERE instance_id = %s",
                    (instance_id,),
                )
            ).fetchone()
        if row is None:
            message = "InstanceId does not match a valid orchestration instance."
            return ApiResponse(400, {"Message": message, "ExceptionMessage": message})
        new_id = instance_id
        if query.get("restartWithNewInstanceId", "true").lower() != "false":
            new_id = uuid.uuid4().hex
        result = await self.create_instance(row[0], new_id, row[1])
        if result is not None:
            return result
        return self.check_status(origin, new_id)

    async def _purge(self, conn: Any, ids: list[str]) -> int:
        if not ids:
            return 0
        await conn.execute(f"DELETE FROM {SCHEMA}.history WHERE instance_id = ANY(%s)", (ids,))
        await conn.execute(f"DELETE FROM {SCHEMA}.inbox WHERE instance_id = ANY(%s)", (ids,))
        await conn.execute(
            f"DELETE FROM {SCHEMA}.activity_tasks WHERE instance_id = ANY(%s)", (ids,)
        )
        deleted = await conn.execute(
            f"DELETE FROM {SCHEMA}.instances WHERE instance_id = ANY(%s)", (ids,)
        )
        return int(deleted.rowcount or 0)

    async def purge(self, instance_id: str) -> ApiResponse:
        async with self.pool.connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    f"SELECT runtime_status FROM {SCHEMA}.instances WHERE instance_id = %s FOR"
                    " UPDATE",
                    (instance_id,),
                )
            ).fetchone()
            # Like the MSSQL and DTS backends, only finished instances are purged.
            if row is None or row[0] not in RuntimeStatus.TERMINAL:
                return ApiResponse(404)
            count = await self._purge(conn, [instance_id])
        return ApiResponse(200, {"instancesDeleted": count})

    async def purge_by(self, query: dict[str, str]) -> ApiResponse:
        where, params = self._filters(query)
        terminal = "runtime_status = ANY(%s)"
        where = f"{where} AND {terminal}" if where else f" WHERE {terminal}"
        params.append(sorted(RuntimeStatus.TERMINAL))
        async with self.pool.connection() as conn, conn.transaction():
            rows = await (
                await conn.execute(
                    f"SELECT instance_id FROM {SCHEMA}.instances{where} FOR UPDATE", params
                )
            ).fetchall()
            count = await self._purge(conn, [r[0] for r in rows])
        if count == 0:
            return ApiResponse(404)
        return ApiResponse(200, {"instancesDeleted": count})


_EVENT_NAMES = {int(e): e.name.title().replace("_", "") for e in EventType}
_EVENT_NAMES[int(EventType.SUB_ORCHESTRATION_CREATED)] = "SubOrchestrationInstanceCreated"
_EVENT_NAMES[int(EventType.SUB_ORCHESTRATION_COMPLETED)] = "SubOrchestrationInstanceCompleted"
_EVENT_NAMES[int(EventType.SUB_ORCHESTRATION_FAILED)] = "SubOrchestrationInstanceFailed"


def friendly_event(event: dict[str, Any], show_output: bool) -> dict[str, Any]:
    """History as the status API shows it: EventType by name, no replay bookkeeping."""
    out = {k: v for k, v in event.items() if k not in ("EventType", "IsPlayed")}
    out["EventType"] = _EVENT_NAMES.get(int(event["EventType"]), str(event["EventType"]))
    if not show_output:
        out.pop("Result", None)
    return out

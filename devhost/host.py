"""The host: loads the app, owns the pools and workers, and serves HTTP (ASGI)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import azure.functions as func
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from devhost import queue as queue_api
from devhost.activities import ActivityWorkerPool
from devhost.app_loader import FunctionIndex, HttpFunction, load_app
from devhost.bindings import call_function
from devhost.config import HostConfig
from devhost.invocations import InvocationLog
from devhost.management import WEBHOOK_PATH, ApiResponse, DurableHttpApi
from devhost.orchestrations import OrchestrationEngine
from devhost.servicebus import ServiceBusDispatcher, ServiceBusQueues
from devhost.store import SCHEMA, HostRegistration, ensure_schema, open_pool, reclaim_dead_hosts
from devhost.streams import serve_streaming_function
from devhost.timers import TimerScheduler

log = logging.getLogger(__name__)

ADMIN_PATH = "/admin/devhost"
RECLAIM_SECONDS = 2.0


class DevHost:
    def __init__(
        self,
        app_dir: Path,
        dsn: str,
        *,
        host: str = "127.0.0.1",
        port: int = 7071,
        poll_seconds: float = 1.0,
        activity_lease_seconds: float = 60.0,
    ) -> None:
        self.app_dir = app_dir.resolve()
        self.dsn = dsn
        self.host = host
        self.port = port
        self.poll_seconds = poll_seconds
        self.activity_lease_seconds = activity_lease_seconds
        self.config = HostConfig.load(self.app_dir)
        self.invocations = InvocationLog()
        loopback = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104 - comparison only
        self.origin = f"http://{loopback}:{port}"
        self.index: FunctionIndex | None = None
        self._background: list[asyncio.Task[None]] = []
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        # The app's own code may read these to find devhost (e.g. its local queue port).
        os.environ.setdefault("DEVHOST_DATABASE_URL", self.dsn)
        os.environ["DEVHOST_ORIGIN"] = self.origin
        await asyncio.to_thread(ensure_schema, self.dsn)
        self.index = await asyncio.to_thread(load_app, self.app_dir, self.config.route_prefix)
        index = self.index
        config = self.config
        self.registration = HostRegistration(self.dsn)
        await self.registration.register()
        host_id: uuid.UUID = self.registration.host_id
        size = config.max_concurrent_orchestrations + config.max_concurrent_activities + 8
        self.pool = open_pool(self.dsn, size=size, name=f"devhost-{host_id}")
        await self.pool.open(wait=True)
        await reclaim_dead_hosts(self.pool)
        threads = int(os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "0")) or max(
            config.max_concurrent_activities, config.service_bus_max_concurrent_calls, 16
        )
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="devhost-fn")
        self.api = DurableHttpApi(
            self.pool,
            index,
            hub_name=config.hub_name,
            rpc_origin=self.origin,
            notify=self._notify_instance,
        )
        self.activities = ActivityWorkerPool(
            self.pool,
            index,
            host_id=host_id,
            concurrency=config.max_concurrent_activities,
            lease_seconds=self.activity_lease_seconds,
            client_binding=self.api.client_binding,
            notify_instance=self._notify_instance,
            invocations=self.invocations,
            executor=self.executor,
            poll_seconds=self.poll_seconds,
        )
        self.engine = OrchestrationEngine(
            self.pool,
            index,
            host_id=host_id,
            concurrency=config.max_concurrent_orchestrations,
            activity_lease_seconds=self.activity_lease_seconds,
            on_activity_tasks=self.activities.submit_leased,
            invocations=self.invocations,
            poll_seconds=self.poll_seconds,
        )
        self.queues = ServiceBusQueues(self.pool, host_id=host_id)
        self.service_bus = ServiceBusDispatcher(
            self.queues,
            index.service_bus,
            max_delivery_count=config.service_bus_max_delivery_count,
            lock_seconds=config.service_bus_lock_seconds,
            concurrency=config.service_bus_max_concurrent_calls,
            invoke=self._invoke_entry,
            invocations=self.invocations,
            poll_seconds=self.poll_seconds,
        )
        self.timers = TimerScheduler(
            self.pool, index.timers, invoke=self._invoke_entry, invocations=self.invocations
        )
        await self.engine.start()
        await self.activities.start()
        await self.service_bus.start()
        await self.timers.start()
        self._background.append(asyncio.create_task(self._reclaim_loop(), name="devhost-reclaim"))
        self._started = True
        log.info(
            "devhost serving %s on %s (%d functions, hub %s)",
            self.app_dir,
            self.origin,
            len(index.describe()),
            config.hub_name,
        )

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.timers.stop()
        await self.service_bus.stop()
        await self.activities.stop()
        await self.engine.stop()
        await self.pool.close()
        await self.registration.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _reclaim_loop(self) -> None:
        while True:
            await asyncio.sleep(RECLAIM_SECONDS)
            try:
                if await reclaim_dead_hosts(self.pool):
                    self.activities.poke()
                    self.service_bus.poke()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reclaiming leases of dead hosts failed")

    def _notify_instance(self, instance_id: str) -> None:
        self.engine.notify(instance_id)

    async def _invoke_entry(self, entry: Any, arguments: dict[str, Any]) -> Any:
        return await call_function(
            entry,
            arguments,
            executor=self.executor,
            client_binding=self.api.client_binding,
            queue_send=self.queues.send_values,
        )

    # -- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        path = request.url.path
        if path == WEBHOOK_PATH or path.startswith(WEBHOOK_PATH + "/"):
            response: Response = await self._management(request, path[len(WEBHOOK_PATH) :])
        elif path.startswith(ADMIN_PATH):
            response = await self._admin(request, path[len(ADMIN_PATH) :])
        else:
            await self._http_function(request, scope, receive, send)
            return
        await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    log.exception("devhost failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _management(self, request: Request, path: str) -> Response:
        body = await request.body()
        origin = f"{request.url.scheme}://{request.url.netloc}"
        result: ApiResponse = await self.api.handle(
            request.method,
            path,
            dict(request.query_params),
            body,
            request.headers.get("content-type", ""),
            origin,
        )
        headers = dict(result.headers)
        if result.body is None:
            return Response(status_code=result.status, headers=headers)
        return JSONResponse(result.body, status_code=result.status, headers=headers)

    async def _admin(self, request: Request, path: str) -> Response:
        assert self.index is not None
        path = path.rstrip("/")
        if path in ("", "/instances"):
            return JSONResponse(await self.instances_overview(request.query_params.get("status")))
        if path == "/client-binding":
            return Response(self.api.client_binding(), media_type="application/json")
        if path == "/functions":
            return JSONResponse(self.index.describe())
        if path == "/invocations":
            limit = int(request.query_params.get("limit", "200"))
            return JSONResponse(self.invocations.recent(limit))
        if path == "/stats":
            return JSONResponse(
                {
                    "engine": self.engine.stats,
                    "activities": self.activities.stats,
                    "invocations": self.invocations.counts,
                }
            )
        if path.startswith("/queues/") and path.endswith("/messages"):
            if request.method != "POST":
                return Response(status_code=405, headers={"Allow": "POST"})
            return await self._enqueue(request, path[len("/queues/") : -len("/messages")])
        if path.startswith("/queues/"):
            return JSONResponse(await self.queues.describe(path[len("/queues/") :]))
        return Response(status_code=404)

    async def _enqueue(self, request: Request, queue: str) -> Response:
        """What a Service Bus send does, over HTTP: the app's local queue port posts here."""
        try:
            message = json.loads(await request.body())
            if not queue or "/" in queue or not isinstance(message, dict):
                raise ValueError("a JSON object for a named queue is expected")
            body = base64.b64decode(message["body_base64"], validate=True)
            properties = message.get("application_properties")
            if properties is not None and not isinstance(properties, dict):
                raise ValueError("application_properties must be an object")
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            return JSONResponse({"error": f"malformed message: {exc}"}, status_code=400)
        message_id = str(message.get("message_id") or uuid.uuid4().hex)
        statement, params = queue_api.insert_statement(
            queue,
            body,
            message_id=message_id,
            content_type=message.get("content_type"),
            correlation_id=message.get("correlation_id"),
            subject=message.get("subject"),
            application_properties=properties,
        )
        async with self.pool.connection() as conn:
            await conn.execute(statement, params)
        queue_api.wake(queue)
        return JSONResponse({"queue": queue, "message_id": message_id}, status_code=201)

    async def instances_overview(self, status: str | None) -> dict[str, Any]:
        where = "WHERE runtime_status = %s" if status else ""
        params = (status,) if status else ()
        async with self.pool.connection() as conn:
            rows = await (
                await conn.execute(
                    f"""
                    SELECT i.instance_id, i.name, i.runtime_status, i.created_at, i.last_updated_at,
                           i.history_len, i.episodes, i.parent_instance_id, i.custom_status,
                           (SELECT count(*) FROM {SCHEMA}.inbox m
                            WHERE m.instance_id = i.instance_id),
                           (SELECT count(*) FROM {SCHEMA}.activity_tasks t
                            WHERE t.instance_id = i.instance_id)
                    FROM {SCHEMA}.instances i {where}
                    ORDER BY i.created_at DESC LIMIT 500
                    """,
                    params,
                )
            ).fetchall()
            counts = await (
                await conn.execute(
                    f"SELECT runtime_status, count(*) FROM {SCHEMA}.instances GROUP BY 1"
                )
            ).fetchall()
        keys = (
            "instanceId",
            "name",
            "runtimeStatus",
            "createdTime",
            "lastUpdatedTime",
            "historyEvents",
            "episodes",
            "parentInstanceId",
            "customStatus",
            "pendingMessages",
            "pendingActivities",
        )
        instances = []
        for row in rows:
            item = dict(zip(keys, row, strict=True))
            item["createdTime"] = row[3].isoformat()
            item["lastUpdatedTime"] = row[4].isoformat()
            item["customStatus"] = json.loads(row[8]) if row[8] is not None else None
            instances.append(item)
        return {"counts": dict(counts), "instances": instances}

    # -- HTTP triggers --------------------------------------------------------------------

    def _match(self, method: str, path: str) -> tuple[HttpFunction, dict[str, str]] | bool | None:
        assert self.index is not None
        path_matched = False
        for http in self.index.http:
            params = http.route.match(path)
            if params is None:
                continue
            path_matched = True
            if http.methods is None or method in http.methods:
                return http, params
        return path_matched

    async def _http_function(
        self, request: Request, scope: Scope, receive: Receive, send: Send
    ) -> None:
        matched = self._match(request.method, request.url.path)
        if not isinstance(matched, tuple):
            status = 405 if matched else 404
            await Response(status_code=status)(scope, receive, send)
            return
        http, route_params = matched
        if http.streaming:
            await serve_streaming_function(
                http.entry, request, route_params, scope, receive, send, invoke=self._invoke_entry
            )
            return
        started = time.perf_counter()
        body = await request.body()
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        func_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=headers,
            params=dict(request.query_params),
            route_params=route_params,
            body=body,
        )
        outcome, error = "Succeeded", None
        try:
            result = await self._invoke_entry(http.entry, {http.entry.trigger.name: func_request})
            response = to_starlette_response(result)
        except Exception as exc:
            log.exception("function %s failed", http.entry.name)
            outcome, error = "Failed", f"{type(exc).__name__}: {exc}"
            response = Response(status_code=500)
        self.invocations.record(
            function=http.entry.name,
            trigger="httpTrigger",
            instance_id=None,
            duration_ms=(time.perf_counter() - started) * 1000,
            outcome=outcome,
            error=error,
        )
        await response(scope, receive, send)


def to_starlette_response(result: Any) -> Response:
    if isinstance(result, func.HttpResponse):
        body = result.get_body()
        headers = [(str(k), str(v)) for k, v in result.headers.items()]
        names = {k.lower() for k, _ in headers}
        if result.mimetype and "content-type" not in names:
            charset = f"; charset={result.charset}" if result.charset else ""
            headers.append(("content-type", f"{result.mimetype}{charset}"))
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("content-length", str(len(body))))
        response = Response(content=body, status_code=result.status_code)
        response.raw_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers
        ]
        return response
    if result is None:
        return Response(status_code=204)
    if isinstance(result, bytes):
        return Response(content=result, media_type="application/octet-stream")
    if isinstance(result, str):
        return Response(content=result, media_type="text/plain")
    return JSONResponse(result)

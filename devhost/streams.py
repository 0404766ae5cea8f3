"""HTTP streams: functions typed with `azurefunctions-extensions-http-fastapi` request/response.

In Azure the host proxies the raw HTTP request to the worker's own web server, so the function
gets a starlette `Request` and may return any starlette `Response`, a `StreamingResponse`
included, which is sent as it is produced. devhost does the same with its own ASGI connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from devhost.app_loader import FunctionEntry

log = logging.getLogger(__name__)

Invoke = Callable[[FunctionEntry, dict[str, Any]], Awaitable[Any]]


async def serve_streaming_function(
    entry: FunctionEntry,
    request: Request,
    route_params: dict[str, str],
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    invoke: Invoke,
) -> None:
    scope["path_params"] = dict(route_params)
    function_request = Request(scope, receive)
    started = time.perf_counter()
    try:
        result = await invoke(entry, {entry.trigger.name: function_request})
    except Exception:
        log.exception("function %s failed", entry.name)
        await Response(status_code=500)(scope, receive, send)
        return
    if isinstance(result, Response):
        response = result
    elif result is None:
        response = Response(status_code=204)
    elif isinstance(result, str):
        response = PlainTextResponse(result)
    else:
        response = JSONResponse(result)
    try:
        await response(scope, receive, send)
    finally:
        log.debug(
            "Executed '%s' (stream, %.1f ms)", entry.name, (time.perf_counter() - started) * 1000
        )

"""GET /v1/events/stream: server-sent events of the tenant's live activity.

It is its own HTTP function (function_app.py) because the ASGI bridge buffers whole
responses; Functions HTTP streams send each event as it is produced. A stream lives for a
bounded time; clients reconnect with `Last-Event-ID` and miss nothing (ids are audit seqs).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from http_api.auth import authorize
from shared.errors import ASEPError
from shared.events.service import events_after, latest_seq
from shared.identity.authentication import Authenticator
from shared.identity.permissions import Permission

POLL_SECONDS = 1.0
STREAM_SECONDS = 300.0


def _problem(exc: ASEPError, path: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="asep"'} if exc.status == 401 else None
    return JSONResponse(
        {
            "type": f"urn:asep:problem:{exc.code}",
            "title": exc.title,
            "status": exc.status,
            "code": exc.code,
            "detail": exc.detail,
            "instance": path,
        },
        status_code=exc.status,
        media_type="application/problem+json",
        headers=headers,
    )


async def stream_events(request: Request, authenticator: Authenticator) -> Response:
    try:
        principal = await asyncio.to_thread(
            authorize,
            authenticator,
            request.headers.get("authorization"),
            Permission.EVENTS_READ.value,
        )
    except ASEPError as exc:
        return _problem(exc, request.url.path)
    tenant_id = principal.tenant_id
    assert tenant_id is not None
    resume = request.headers.get("last-event-id") or request.query_params.get("after")
    after = (
        int(resume)
        if resume and resume.isdigit()
        else await asyncio.to_thread(latest_seq, tenant_id)
    )

    async def feed() -> AsyncIterator[str]:
        nonlocal after
        yield ": connected\n\n"
        deadline = asyncio.get_running_loop().time() + STREAM_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            events = await asyncio.to_thread(events_after, tenant_id, after)
            for event in events:
                after = event.seq
                data = json.dumps(event.model_dump(mode="json"), separators=(",", ":"))
                yield f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n"
            if not events:
                yield ": keep-alive\n\n"
                await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(
        feed(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )

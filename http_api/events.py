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
from starlette.responses import Response, StreamingResponse

from http_api.auth import authorize
from http_api.problems import problem_response
from shared.errors import ASEPError, ValidationFailed
from shared.events.service import events_after, latest_seq
from shared.identity.authentication import Authenticator
from shared.identity.permissions import Permission

POLL_SECONDS = 1.0
STREAM_SECONDS = 300.0


def _problem(exc: ASEPError, request: Request) -> Response:
    return problem_response(
        request,
        status=exc.status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        headers={"WWW-Authenticate": 'Bearer realm="asep"'} if exc.status == 401 else None,
        **exc.extensions,
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
        return _problem(exc, request)
    tenant_id = principal.tenant_id
    assert tenant_id is not None
    resume = request.headers.get("last-event-id") or request.query_params.get("after")
    # A resume point we cannot read would silently skip to the newest event; ASCII digits
    # only (str.isdigit accepts "²") and within a bigint.
    if resume and not (resume.isascii() and resume.isdigit() and len(resume) <= 18):
        return _problem(
            ValidationFailed("Last-Event-ID and `after` must be an event seq (digits)."), request
        )
    after = int(resume) if resume else await asyncio.to_thread(latest_seq, tenant_id)

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

"""ASGI middleware: request/correlation ids, one log line per request, and the body size cap."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from http_api.problems import problem_response
from shared.telemetry.context import correlation_id_var, request_id_var

log = logging.getLogger("asep.http")

# Inbound ids are echoed into headers and logs, so only a conservative shape is accepted.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            text = value.decode("latin-1")
            return text if _SAFE_ID.fullmatch(text) else None
    return None


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id") or uuid.uuid4().hex
        correlation_id = _header(scope, b"x-correlation-id") or request_id
        request_token = request_id_var.set(request_id)
        correlation_token = correlation_id_var.set(correlation_id)
        started = time.perf_counter()
        status = 500

        async def send_with_ids(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"x-correlation-id", correlation_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        finally:
            # The path only: query strings can carry tokens (unsubscribe links, OAuth callbacks).
            log.info(
                "request",
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id_var.reset(request_token)
            correlation_id_var.reset(correlation_token)


class BodySizeLimitMiddleware:
    """Refuses bodies over `max_bytes` with 413, by Content-Length or by counting chunks."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, larger_for: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Path suffixes (e.g. "/import") whose uploads may be larger than ordinary bodies.
        self.larger_for = larger_for or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = next(
            (size for suffix, size in self.larger_for.items() if path.endswith(suffix)),
            self.max_bytes,
        )
        detail = f"The request body exceeds {limit} bytes."
        declared = next(
            (value for key, value in scope.get("headers", []) if key.lower() == b"content-length"),
            None,
        )
        if declared is not None and declared.isdigit() and int(declared) > limit:
            response = problem_response(
                Request(scope),
                status=413,
                code="payload_too_large",
                title="Payload too large",
                detail=detail,
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, detail)
            return message

        await self.app(scope, counting_receive, send)


class UnhandledErrorMiddleware:
    """Turns an exception no handler took into a 500 problem, inside the request-id scope.

    Starlette's own catch-all sits outside every user middleware, where the request id is
    gone; this one answers with it, logs the exception and never shows it to the client.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error")
            if response_started:
                raise
            response = problem_response(
                Request(scope), status=500, code="internal_error", title="Internal error"
            )
            await response(scope, receive, send)

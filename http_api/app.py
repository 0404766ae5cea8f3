"""The FastAPI application: /healthz, /openapi.json and /v1, with problem+json errors."""

from __future__ import annotations

from fastapi import FastAPI

from http_api import health, hooks, unsubscribe, v1
from http_api.auth import publish_permissions
from http_api.middleware import (
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    UnhandledErrorMiddleware,
)
from http_api.orchestration_bridge import (
    DurableApprovalSink,
    DurableKillSwitchSignal,
    DurableReplySignal,
)
from http_api.problems import install_problem_handlers
from shared.config import get_settings
from shared.identity.authentication import Authenticator

API_TITLE = "ShaunAI ASEP API"
API_VERSION = "0.1.0"


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title=API_TITLE,
        version=API_VERSION,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    install_problem_handlers(app)
    app.state.authenticator = Authenticator(settings)
    # Durable implementations of the ports that wake orchestrations; each uses the durable
    # client of the request it runs in (and logs, without one, outside the Functions host).
    app.state.approval_decision_sink = DurableApprovalSink()
    app.state.orchestration_signal = DurableKillSwitchSignal()
    app.state.reply_signal = DurableReplySignal()
    app.include_router(health.router)
    app.include_router(v1.router)
    app.include_router(unsubscribe.router)
    app.include_router(hooks.router)
    publish_permissions(app)
    # The last added is the outermost: ids exist before the size check or an error answers.
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        # Raw messages injected into a sandbox mailbox may be as large as real mail (10+ MiB).
        larger_for={"/import": settings.max_import_bytes, "/inbound": 32 * 1_048_576},
    )
    app.add_middleware(RequestContextMiddleware)
    return app

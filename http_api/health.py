"""GET /healthz: is this instance able to serve (can the app role reach the database)?"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from http_api.auth import public_endpoint
from http_api.problems import problem_response
from shared.db.unit_of_work import ping_database

log = logging.getLogger(__name__)
router = APIRouter()


@router.get("/healthz", tags=["health"], dependencies=[public_endpoint()])
async def healthz(request: Request) -> JSONResponse:
    try:
        await run_in_threadpool(ping_database)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("health check: database unreachable: %s", type(exc).__name__)
        return problem_response(
            request,
            status=503,
            code="database_unavailable",
            title="Database unavailable",
            checks={"database": "unavailable"},
        )
    return JSONResponse({"status": "ok", "checks": {"database": "ok"}})

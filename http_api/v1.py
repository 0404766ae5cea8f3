"""The /v1 API (seed §10). Each capability adds its router here."""

from __future__ import annotations

from fastapi import APIRouter

from http_api import (
    approvals,
    audit,
    campaigns,
    deals,
    execution,
    identity,
    integrations,
    meetings,
    policies,
    prospects,
    suppressions,
)
from http_api import replies as replies_routes
from http_api import sandbox as sandbox_routes

router = APIRouter(prefix="/v1")
router.include_router(identity.router)
router.include_router(audit.router)
router.include_router(policies.router)
router.include_router(prospects.router)
router.include_router(campaigns.router)
router.include_router(suppressions.router)
router.include_router(approvals.router)
router.include_router(sandbox_routes.router)
router.include_router(integrations.router)
router.include_router(execution.router)
router.include_router(replies_routes.router)
router.include_router(deals.router)
router.include_router(meetings.router)

"""The /v1 API (seed §10). Each capability adds its router here."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1")

"""Domain errors: each carries an HTTP status and a stable code (RFC 9457 `type` suffix).

Codes are part of the API contract: clients branch on them, so never rename one.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ASEPError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"
    retryable: ClassVar[bool] = False

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.extensions = extensions


class Unauthorized(ASEPError):
    """Authentication failed. The detail is deliberately the same for every reason."""

    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(ASEPError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(ASEPError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(ASEPError):
    status = 409
    code = "conflict"
    title = "Conflict"


class ValidationFailed(ASEPError):
    status = 422
    code = "validation_failed"
    title = "Validation failed"


class TenantMismatch(ASEPError):
    """Code tried to write a row for another tenant than its unit of work's."""

    status = 500
    code = "tenant_mismatch"
    title = "Tenant mismatch"


class DatabaseUnavailable(ASEPError):
    status = 503
    code = "database_unavailable"
    title = "Database unavailable"
    retryable = True

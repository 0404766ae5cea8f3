"""The durable client of the current HTTP invocation (ARCHITECTURE.md §6).

function_app.py's catch-all HTTP function declares `durable_client_input`, receives the
client from the Functions host and puts it here for the request; endpoints get it through
a dependency, never from a global.
"""

from __future__ import annotations

from contextvars import ContextVar

from azure.durable_functions import DurableOrchestrationClient

from shared.errors import ASEPError


class OrchestrationClientUnavailable(ASEPError):
    status = 503
    code = "orchestration_unavailable"
    title = "Orchestration client unavailable"
    retryable = True


durable_client_var: ContextVar[DurableOrchestrationClient | None] = ContextVar(
    "durable_client", default=None
)


def current_durable_client() -> DurableOrchestrationClient:
    """FastAPI dependency: the host's durable client for this request."""
    client = durable_client_var.get()
    if client is None:
        raise OrchestrationClientUnavailable(
            "This request did not come through the Functions host's durable client binding."
        )
    return client

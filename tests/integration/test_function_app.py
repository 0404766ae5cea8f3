"""function_app.py through the Functions programming model: the catch-all HTTP function
bridges to FastAPI and hands the durable client to the request."""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest

from shared.db.server import DatabaseUrls

CLIENT_BINDING = {
    "taskHubName": "AsepHub",
    "creationUrls": {},
    "managementUrls": {},
    "baseUrl": "http://127.0.0.1:7071/runtime/webhooks/durabletask",
    "requiredQueryStringParameters": "",
    "rpcBaseUrl": "http://127.0.0.1:17071/durabletask/",
}


class _Context:
    """What the worker passes as `context` (func.Context is abstract)."""

    invocation_id = "inv-1"
    function_name = "http_api"
    function_directory = "."
    trace_context = None
    retry_context = None
    thread_local_storage = None


@functools.cache
def _functions() -> dict[str, Any]:
    # get_functions() refuses a second call (azure-functions 1.26): build the index once.
    import function_app

    return {fn.get_function_name(): fn for fn in function_app.app.get_functions()}


def test_the_app_registers_one_catch_all_http_function_with_a_durable_client(
    database: DatabaseUrls,
) -> None:
    functions = _functions()
    http = functions["http_api"]
    assert http.get_trigger().get_binding_name() == "httpTrigger"
    assert http.get_trigger().route == "{*route}"
    bindings = {binding.get_binding_name() for binding in http.get_bindings()}
    assert "durableClient" in bindings

    request = func.HttpRequest(
        method="GET",
        url="http://127.0.0.1:7071/healthz",
        headers={},
        body=b"",
        route_params={"route": "healthz"},
    )
    response = asyncio.run(
        http.get_user_function()(req=request, context=_Context(), client=json.dumps(CLIENT_BINDING))
    )
    assert response.status_code == 200
    assert json.loads(response.get_body()) == {"status": "ok", "checks": {"database": "ok"}}
    assert response.headers["x-request-id"]


def test_the_durable_client_is_visible_to_the_request_only(
    database: DatabaseUrls, monkeypatch: pytest.MonkeyPatch
) -> None:
    from http_api.durable import current_durable_client, durable_client_var

    seen: list[df.DurableOrchestrationClient] = []

    import function_app

    original = function_app.asgi.handle_async

    async def capture(req: func.HttpRequest, context: Any) -> func.HttpResponse:
        seen.append(current_durable_client())
        response: func.HttpResponse = await original(req, context)
        return response

    monkeypatch.setattr(function_app.asgi, "handle_async", capture)
    request = func.HttpRequest(
        method="GET", url="http://127.0.0.1:7071/healthz", headers={}, body=b""
    )
    asyncio.run(
        _functions()["http_api"].get_user_function()(
            req=request, context=_Context(), client=json.dumps(CLIENT_BINDING)
        )
    )
    assert len(seen) == 1
    assert isinstance(seen[0], df.DurableOrchestrationClient)
    assert durable_client_var.get() is None

"""A small v2-model app, independent of ASEP, that exercises every devhost feature."""

from __future__ import annotations

import json
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, StreamingResponse
from fastapi import FastAPI

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

_attempts: dict[str, int] = {}
_attempts_lock = threading.Lock()
_replayed: set[str] = set()


def _record(kind: str, payload: Any) -> None:
    """Side effects the tests can observe: one JSON line per event in DEVHOST_TEST_OUTBOX."""
    outbox = os.environ.get("DEVHOST_TEST_OUTBOX")
    if outbox:
        with Path(outbox).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"kind": kind, "payload": payload}) + "\n")


# -- HTTP ------------------------------------------------------------------------------


@app.route(route="hello/{name}", methods=["GET"])
def hello_http(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"Hello, {req.route_params['name']}!", mimetype="text/plain")


@app.route(route="items/{id:int}", methods=["GET", "PUT"])
async def item_by_id(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    body = {
        "id": int(req.route_params["id"]),
        "method": req.method,
        "q": req.params.get("q"),
        "function": context.function_name,
    }
    return func.HttpResponse(
        json.dumps(body), mimetype="application/json", headers={"X-Item": "yes"}
    )


@app.route(route="items/special", methods=["GET"])
def item_special(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("special")


@app.route(route="files/{*path}", methods=["GET"])
def files(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.route_params.get("path", ""))


@app.route(route="echo", methods=["POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(
        req.get_body(), status_code=201, mimetype=req.headers.get("content-type", "text/plain")
    )


@app.route(route="boom")
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("the HTTP function failed")


inner = FastAPI()


@inner.get("/api/asgi/ping")
async def ping(n: int = 0) -> dict[str, Any]:
    return {"pong": n + 1}


@app.route(route="asgi/{*rest}", methods=["GET", "POST"])
async def asgi_bridge(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return await func.AsgiMiddleware(inner).handle_async(req, context)


@app.route(route="stream/{count:int}", methods=["GET"])
async def stream(req: Request) -> StreamingResponse:
    count = int(req.path_params["count"])

    async def chunks() -> Any:
        for n in range(count):
            yield f"data: {n}\n\n"

    return StreamingResponse(chunks(), media_type="text/event-stream")


# -- Durable client ---------------------------------------------------------------------


@app.route(route="orchestrators/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_start(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    body = req.get_body()
    payload = json.loads(body) if body else None
    instance_id = await client.start_new(
        req.route_params["functionName"], req.params.get("id"), payload
    )
    return client.create_check_status_response(req, instance_id)


@app.route(route="run/{functionName}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def http_run(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    body = req.get_body()
    instance_id = await client.start_new(
        req.route_params["functionName"], None, json.loads(body) if body else None
    )
    return await client.wait_for_completion_or_create_check_status_response(
        req, instance_id, timeout_in_milliseconds=20000, retry_interval_in_milliseconds=100
    )


# -- Orchestrators ----------------------------------------------------------------------


@app.orchestration_trigger(context_name="context")
def chaining(context: df.DurableOrchestrationContext) -> Any:
    results = []
    for city in ("Tokyo", "Seattle", "London"):
        results.append((yield context.call_activity("say_hello", city)))
    return results


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext) -> Any:
    count = int(context.get_input())
    values = yield context.task_all([context.call_activity("double", n) for n in range(count)])
    return {"count": len(values), "sum": sum(values)}


@app.orchestration_trigger(context_name="context")
def sequence(context: df.DurableOrchestrationContext) -> Any:
    count = int(context.get_input())
    total = 0
    for n in range(count):
        total += yield context.call_activity("double", n)
    return total


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext) -> Any:
    timeout = float(context.get_input())
    deadline = context.current_utc_datetime + timedelta(seconds=timeout)
    decision = context.wait_for_external_event("Approval")
    timer = context.create_timer(deadline)
    winner = yield context.task_any([decision, timer])
    if winner == decision:
        timer.cancel()
        return {"approved": decision.result}
    return {"approved": None, "timed_out": True}


@app.orchestration_trigger(context_name="context")
def monitor(context: df.DurableOrchestrationContext) -> Any:
    settings = context.get_input()
    ticks = 0
    while ticks < settings["checks"]:
        status = yield context.call_activity("check_status", ticks)
        ticks += 1
        context.set_custom_status({"checks": ticks, "last": status})
        if status == "done":
            break
        next_check = context.current_utc_datetime + timedelta(seconds=settings["interval"])
        yield context.create_timer(next_check)
    return ticks


@app.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext) -> Any:
    settings = context.get_input()
    options = df.RetryOptions(
        first_retry_interval_in_milliseconds=200, max_number_of_attempts=settings["max"]
    )
    try:
        result = yield context.call_activity_with_retry(
            "flaky", options, {"key": settings["key"], "failures": settings["failures"]}
        )
    except Exception as exc:
        if settings.get("catch"):
            return {"caught": str(exc)}
        raise
    return {"result": result}


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext) -> Any:
    settings = context.get_input()
    child = yield context.call_sub_orchestrator("chaining", None, f"{context.instance_id}-child")
    options = df.RetryOptions(first_retry_interval_in_milliseconds=200, max_number_of_attempts=3)
    flaky = yield context.call_sub_orchestrator_with_retry(
        "flaky_child", options, {"key": settings["key"], "failures": 2}
    )
    fanned = yield context.task_all([context.call_sub_orchestrator("fan_out", 3) for _ in range(2)])
    return {"child": child, "flaky": flaky, "fanned": fanned}


@app.orchestration_trigger(context_name="context")
def flaky_child(context: df.DurableOrchestrationContext) -> Any:
    settings = context.get_input()
    # No retry inside: each failed attempt fails this child instance.
    return (yield context.call_activity("flaky", settings))


@app.orchestration_trigger(context_name="context")
def eternal(context: df.DurableOrchestrationContext) -> Any:
    state = context.get_input()
    value = yield context.call_activity("double", state["n"])
    if state["n"] + 1 >= state["until"]:
        return {"n": state["n"] + 1, "last": value}
    context.continue_as_new({"n": state["n"] + 1, "until": state["until"]})
    return None


@app.orchestration_trigger(context_name="context")
def waiter(context: df.DurableOrchestrationContext) -> Any:
    first = yield context.wait_for_external_event("First")
    second = yield context.wait_for_external_event("Second")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def shifty(context: df.DurableOrchestrationContext) -> Any:
    # Deliberately nondeterministic: the activity name changes once the instance replays.
    name = "double" if context.instance_id in _replayed else "say_hello"
    _replayed.add(context.instance_id)
    first = yield context.call_activity(name, 1)
    second = yield context.call_activity("say_hello", "again")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def calls_missing(context: df.DurableOrchestrationContext) -> Any:
    return (yield context.call_activity("no_such_activity", 1))


@app.orchestration_trigger(context_name="context")
def crashes(context: df.DurableOrchestrationContext) -> Any:
    yield context.call_activity("say_hello", "x")
    raise ValueError("the orchestrator gave up")


@app.orchestration_trigger(context_name="context")
def replay_aware(context: df.DurableOrchestrationContext) -> Any:
    seen = []
    for n in range(3):
        seen.append(context.is_replaying)
        yield context.call_activity("double", n)
    return {
        "replaying_at_end": context.is_replaying,
        "time": context.current_utc_datetime.isoformat(),
    }


# -- Activities -------------------------------------------------------------------------


@app.activity_trigger(input_name="city")
def say_hello(city: str) -> str:
    return f"Hello {city}"


@app.activity_trigger(input_name="n")
async def double(n: int) -> int:
    return n * 2


@app.activity_trigger(input_name="n")
def check_status(n: int) -> str:
    return "done" if n >= 2 else "pending"


@app.activity_trigger(input_name="settings")
def flaky(settings: dict[str, Any]) -> str:
    key = settings["key"]
    with _attempts_lock:
        _attempts[key] = _attempts.get(key, 0) + 1
        attempt = _attempts[key]
    if attempt <= settings["failures"]:
        raise RuntimeError(f"attempt {attempt} of {key} failed")
    return f"{key} succeeded on attempt {attempt}"


@app.activity_trigger(input_name="payload")
@app.durable_client_input(client_name="client")
async def start_from_activity(
    payload: dict[str, Any], client: df.DurableOrchestrationClient
) -> str:
    return str(await client.start_new("chaining", payload["id"], None))


@app.orchestration_trigger(context_name="context")
def starts_another(context: df.DurableOrchestrationContext) -> Any:
    started = yield context.call_activity(
        "start_from_activity", {"id": f"{context.instance_id}-started"}
    )
    return started


# -- Service Bus and timers -------------------------------------------------------------


@app.service_bus_queue_trigger(
    arg_name="msg", queue_name="orders", connection="ServiceBusConnection"
)
def on_order(msg: func.ServiceBusMessage) -> None:
    body = msg.get_body().decode("utf-8")
    if body == "poison":
        raise ValueError("cannot process a poisoned order")
    _record(
        "order", {"body": body, "delivery_count": msg.delivery_count, "message_id": msg.message_id}
    )


@app.service_bus_queue_trigger(
    arg_name="text", queue_name="forwarded", connection="ServiceBusConnection"
)
@app.service_bus_queue_output(
    arg_name="out", queue_name="orders", connection="ServiceBusConnection"
)
def forward(text: str, out: func.Out[str]) -> None:
    out.set(f"fwd:{text}")


@app.timer_trigger(schedule="*/1 * * * * *", arg_name="timer", run_on_startup=False)
def every_second(timer: func.TimerRequest) -> None:
    _record("tick", {"past_due": timer.past_due})

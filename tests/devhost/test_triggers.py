"""HTTP, Service Bus and timer triggers of the conformance app, served by devhost."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from devhost.queue import QueueSender
from devhost.routing import RouteTemplate
from devhost.timers import CronSchedule, IntervalSchedule, ScheduleError, parse_schedule
from tests.devhost.conftest import DevhostProcess, read_outbox


def test_route_templates_parameters_constraints_and_precedence(devhost: DevhostProcess) -> None:
    base = f"{devhost.base_url}/api"
    assert httpx.get(f"{base}/hello/World").text == "Hello, World!"
    item = httpx.get(f"{base}/items/42?q=x")
    assert item.json() == {"id": 42, "method": "GET", "q": "x", "function": "item_by_id"}
    assert item.headers["x-item"] == "yes"
    assert item.headers["content-type"].startswith("application/json")
    assert httpx.get(f"{base}/items/special").text == "special"
    assert httpx.get(f"{base}/items/abc").status_code == 404
    assert httpx.put(f"{base}/items/7").json()["method"] == "PUT"
    assert httpx.delete(f"{base}/items/7").status_code == 405
    assert httpx.get(f"{base}/files/a/b/c.txt").text == "a/b/c.txt"
    assert httpx.get(f"{devhost.base_url}/hello/World").status_code == 404  # routePrefix "api"


def test_bodies_errors_and_the_asgi_bridge(devhost: DevhostProcess) -> None:
    base = f"{devhost.base_url}/api"
    echoed = httpx.post(
        f"{base}/echo", content=b'{"x": 1}', headers={"content-type": "application/json"}
    )
    assert echoed.status_code == 201
    assert echoed.json() == {"x": 1}
    assert httpx.get(f"{base}/boom").status_code == 500
    assert httpx.get(f"{base}/asgi/ping", params={"n": 4}).json() == {"pong": 5}


def test_http_stream_is_sent_as_produced(devhost: DevhostProcess) -> None:
    with httpx.stream("GET", f"{devhost.base_url}/api/stream/3", timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-length" not in response.headers
        body = "".join(response.iter_text())
    assert body == "data: 0\n\ndata: 1\n\ndata: 2\n\n"


def _wait(predicate: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_service_bus_trigger_and_output_binding(devhost: DevhostProcess, outbox: object) -> None:
    sender = QueueSender(devhost.dsn)
    token = uuid.uuid4().hex
    sender.send("orders", f"order-{token}", message_id=f"m-{token}")
    sender.send("forwarded", token)

    def delivered() -> bool:
        bodies = {o["body"] for o in read_outbox(outbox, "order")}  # type: ignore[arg-type]
        return {f"order-{token}", f"fwd:{token}"} <= bodies

    _wait(delivered)
    order = next(o for o in read_outbox(outbox, "order") if o["body"] == f"order-{token}")  # type: ignore[arg-type]
    assert order["message_id"] == f"m-{token}"
    assert order["delivery_count"] == 1


def test_poisoned_message_is_dead_lettered_without_blocking(
    devhost: DevhostProcess, outbox: object
) -> None:
    sender = QueueSender(devhost.dsn)
    token = uuid.uuid4().hex
    sender.send("orders", "poison", message_id=f"poison-{token}")
    sender.send("orders", f"after-{token}")
    _wait(lambda: any(o["body"] == f"after-{token}" for o in read_outbox(outbox, "order")))  # type: ignore[arg-type]
    _wait(lambda: any(d.message_id == f"poison-{token}" for d in sender.dead_letters("orders")))
    dead = next(d for d in sender.dead_letters("orders") if d.message_id == f"poison-{token}")
    assert dead.delivery_count == 3  # DEVHOST_SERVICEBUS_MAX_DELIVERY_COUNT
    assert dead.reason == "MaxDeliveryCountExceeded"
    assert "cannot process a poisoned order" in (dead.description or "")
    queue = httpx.get(f"{devhost.base_url}/admin/devhost/queues/orders").json()
    assert queue["deadLetterMessageCount"] >= 1


def test_timer_trigger_fires_on_its_ncrontab_schedule(
    devhost: DevhostProcess, outbox: object
) -> None:
    before = len(read_outbox(outbox, "tick"))  # type: ignore[arg-type]
    time.sleep(2.5)
    assert len(read_outbox(outbox, "tick")) - before >= 2  # type: ignore[arg-type]


def test_ncrontab_next_occurrences() -> None:
    start = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    every_five = CronSchedule.parse("*/5 * * * * *")
    assert every_five.next_after(start) == datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)
    weekdays_nine = CronSchedule.parse("0 30 9 * * Mon-Fri")
    saturday = datetime(2024, 5, 4, 10, 0, tzinfo=UTC)
    assert weekdays_nine.next_after(saturday) == datetime(2024, 5, 6, 9, 30, tzinfo=UTC)
    monthly = CronSchedule.parse("0 0 0 1 * *")
    assert monthly.next_after(start) == datetime(2024, 6, 1, tzinfo=UTC)
    assert isinstance(parse_schedule("00:05:00"), IntervalSchedule)
    with pytest.raises(ScheduleError):
        parse_schedule("* * * * *")
    with pytest.raises(ScheduleError):
        parse_schedule("0 61 * * * *")


def test_route_template_matching_rules() -> None:
    template = RouteTemplate.compile("orders/{id:int}/lines/{line?}", "api")
    assert template.match("/api/orders/5/lines") == {"id": "5"}
    assert template.match("/api/Orders/5/lines/2") == {"id": "5", "line": "2"}
    assert template.match("/api/orders/x/lines") is None
    catch_all = RouteTemplate.compile("{*path}", "")
    assert catch_all.match("/v1/campaigns/1") == {"path": "v1/campaigns/1"}
    assert RouteTemplate.compile("a/{b}", "").precedence < catch_all.precedence

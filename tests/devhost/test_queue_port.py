"""The app's queue port, local implementation: messages posted to devhost reach the
Service Bus-triggered function with their id and properties; bad posts are refused."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from shared.queue.devhost import DevhostQueueSender
from shared.queue.port import QueueMessage, QueueUnavailable
from tests.devhost.conftest import DevhostProcess, read_outbox


def _wait_for_order(outbox: Path, body: str) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for order in read_outbox(outbox, "order"):
            if order["body"] == body:
                return order
        time.sleep(0.05)
    raise AssertionError(f"order {body!r} was not consumed")


def test_a_message_sent_through_the_port_is_consumed_once(
    devhost: DevhostProcess, outbox: Path
) -> None:
    token = uuid.uuid4().hex
    sender = DevhostQueueSender(devhost.base_url)
    sender.send(
        "orders",
        QueueMessage(
            body=f"port-{token}".encode(),
            message_id=f"port-{token}",
            content_type="text/plain",
            correlation_id=f"journey-{token}",
        ),
    )
    order = _wait_for_order(outbox, f"port-{token}")
    assert order["message_id"] == f"port-{token}"
    assert order["delivery_count"] == 1


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[]", b'{"message_id": "x"}', b'{"body_base64": "***"}'],
)
def test_malformed_posts_are_refused_with_400(devhost: DevhostProcess, payload: bytes) -> None:
    response = httpx.post(
        f"{devhost.base_url}/admin/devhost/queues/orders/messages", content=payload, timeout=10
    )
    assert response.status_code == 400


def test_an_unreachable_devhost_raises_queue_unavailable() -> None:
    sender = DevhostQueueSender("http://127.0.0.1:9")
    with pytest.raises(QueueUnavailable):
        sender.send("orders", QueueMessage(body=b"x", message_id="m"))

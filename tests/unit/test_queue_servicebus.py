"""The Service Bus adapter's own logic, with the SDK client mocked by spec (no local peer)."""

from __future__ import annotations

from unittest.mock import MagicMock, create_autospec

import pytest
from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusSender
from azure.servicebus.exceptions import ServiceBusConnectionError

from shared.queue.port import QueueMessage, QueueUnavailable
from shared.queue.servicebus import ServiceBusQueueSender, to_service_bus_message


def _client_with(sender: MagicMock) -> MagicMock:
    client: MagicMock = create_autospec(ServiceBusClient, instance=True)
    client.get_queue_sender.return_value.__enter__.return_value = sender
    return client


def test_messages_keep_their_id_and_properties() -> None:
    message = QueueMessage(
        body=b'{"x": 1}',
        message_id="m-1",
        correlation_id="journey-7",
        subject="reply",
        application_properties={"tenant": "t-1"},
    )
    converted = to_service_bus_message(message)
    assert converted.message_id == "m-1"
    assert converted.correlation_id == "journey-7"
    assert converted.subject == "reply"
    assert converted.content_type == "application/json"
    assert converted.application_properties == {"tenant": "t-1"}
    assert b"".join(converted.body) == b'{"x": 1}'


def test_send_goes_to_the_named_queue() -> None:
    sender = create_autospec(ServiceBusSender, instance=True)
    client = _client_with(sender)
    ServiceBusQueueSender(client).send("inbound-mail", QueueMessage(body=b"x", message_id="m-2"))
    client.get_queue_sender.assert_called_once_with(queue_name="inbound-mail")
    (sent,), _ = sender.send_messages.call_args
    assert isinstance(sent, ServiceBusMessage)
    assert sent.message_id == "m-2"


def test_service_bus_errors_become_queue_unavailable() -> None:
    sender = create_autospec(ServiceBusSender, instance=True)
    sender.send_messages.side_effect = ServiceBusConnectionError(message="down")
    with pytest.raises(QueueUnavailable):
        ServiceBusQueueSender(_client_with(sender)).send(
            "crm-events", QueueMessage(body=b"x", message_id="m-3")
        )

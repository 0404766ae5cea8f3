"""The Azure implementation: Service Bus queues through azure-servicebus.

Kept thin on purpose: no local Service Bus exists, so its own logic (message mapping,
error translation) is what the tests cover, with the SDK's client mocked by spec.
"""

from __future__ import annotations

from azure.servicebus import ServiceBusClient, ServiceBusMessage
from azure.servicebus.exceptions import ServiceBusError

from shared.queue.port import QueueMessage, QueueUnavailable


def to_service_bus_message(message: QueueMessage) -> ServiceBusMessage:
    return ServiceBusMessage(
        message.body,
        message_id=message.message_id,
        content_type=message.content_type,
        correlation_id=message.correlation_id,
        subject=message.subject,
        application_properties=dict(message.application_properties) or None,
    )


class ServiceBusQueueSender:
    def __init__(self, client: ServiceBusClient) -> None:
        self._client = client

    @classmethod
    def from_namespace(cls, fully_qualified_namespace: str) -> ServiceBusQueueSender:
        from azure.identity import DefaultAzureCredential

        return cls(ServiceBusClient(fully_qualified_namespace, DefaultAzureCredential()))

    def send(self, queue: str, message: QueueMessage) -> None:
        try:
            with self._client.get_queue_sender(queue_name=queue) as sender:
                sender.send_messages(to_service_bus_message(message))
        except ServiceBusError as exc:
            raise QueueUnavailable(f"service bus queue {queue!r}: {type(exc).__name__}") from exc

"""The queue port: how the app hands work to a queue-triggered function.

Azure: Service Bus queues (`inbound-mail`, `crm-events`) through `azure-servicebus`.
One machine: devhost's Postgres-backed queues, reached over devhost's HTTP admin API the
way the Azure implementation reaches Service Bus over the network. Tests: in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

# What Service Bus accepts as an application property value.
PropertyValue = int | float | bytes | bool | str | UUID


@dataclass(frozen=True)
class QueueMessage:
    body: bytes
    message_id: str
    content_type: str | None = "application/json"
    correlation_id: str | None = None
    subject: str | None = None
    application_properties: dict[str | bytes, PropertyValue] = field(default_factory=dict)


class QueueSender(Protocol):
    def send(self, queue: str, message: QueueMessage) -> None:
        """Enqueue `message`; Service Bus deduplicates on message_id where enabled."""
        ...


class QueueUnavailable(RuntimeError):
    """The queue could not take the message; the caller decides whether to retry."""


@dataclass
class InMemoryQueueSender:
    """The test fake: records what was sent, in order, per queue."""

    sent: dict[str, list[QueueMessage]] = field(default_factory=dict)

    def send(self, queue: str, message: QueueMessage) -> None:
        self.sent.setdefault(queue, []).append(message)

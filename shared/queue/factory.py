"""Picks the queue implementation in one place, from settings."""

from __future__ import annotations

from shared.config import Environment, Settings, get_settings
from shared.queue.devhost import DevhostQueueSender
from shared.queue.port import QueueSender
from shared.queue.servicebus import ServiceBusQueueSender


def queue_sender(settings: Settings | None = None) -> QueueSender:
    settings = settings or get_settings()
    if settings.env is Environment.AZURE:
        if not settings.servicebus_namespace:
            raise RuntimeError("ASEP_SERVICEBUS_NAMESPACE is required when ASEP_ENV=azure")
        return ServiceBusQueueSender.from_namespace(settings.servicebus_namespace)
    return DevhostQueueSender(settings.devhost_origin)

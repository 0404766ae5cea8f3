"""The local implementation: devhost's queue over its admin HTTP API."""

from __future__ import annotations

import base64

import httpx

from shared.queue.port import QueueMessage, QueueUnavailable


class DevhostQueueSender:
    def __init__(self, origin: str, client: httpx.Client | None = None) -> None:
        self._origin = origin.rstrip("/")
        self._client = client or httpx.Client(timeout=10)

    def send(self, queue: str, message: QueueMessage) -> None:
        payload = {
            "body_base64": base64.b64encode(message.body).decode("ascii"),
            "message_id": message.message_id,
            "content_type": message.content_type,
            "correlation_id": message.correlation_id,
            "subject": message.subject,
            "application_properties": message.application_properties,
        }
        url = f"{self._origin}/admin/devhost/queues/{queue}/messages"
        try:
            response = self._client.post(url, json=payload)
        except httpx.HTTPError as exc:
            raise QueueUnavailable(f"devhost queue {queue!r}: {type(exc).__name__}") from exc
        if response.status_code != 201:
            raise QueueUnavailable(f"devhost queue {queue!r}: HTTP {response.status_code}")

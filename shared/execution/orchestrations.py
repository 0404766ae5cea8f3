"""Start orchestration instances and raise events to them (ARCHITECTURE.md §6).

`DurableOrchestrations` wraps the Functions host's `DurableOrchestrationClient`, which an
HTTP function or activity receives through its `durable_client_input` binding.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class DurableOrchestrations:
    def __init__(self, client: Any) -> None:
        self._client = client

    async def start(self, orchestrator: str, instance_id: str, payload: dict[str, Any]) -> bool:
        """Start `instance_id`; False when it is already running. A finished instance starts
        again: a campaign run restarted after it ended."""
        status = await self._client.get_status(instance_id)
        running = getattr(status, "runtime_status", None)
        if running is not None and running.value in ("Running", "Pending", "Suspended"):
            return False
        await self._client.start_new(orchestrator, instance_id, payload)
        return True

    async def start_once(
        self, orchestrator: str, instance_id: str, payload: dict[str, Any]
    ) -> bool:
        """Start `instance_id` unless it exists in any state: one journey per member, one flow
        per message, however often a retried caller asks."""
        status = await self._client.get_status(instance_id)
        if getattr(status, "runtime_status", None) is not None:
            return False
        await self._client.start_new(orchestrator, instance_id, payload)
        return True

    async def raise_event(self, instance_id: str, event: str, payload: dict[str, Any]) -> None:
        """Deliver `event`; an instance that is gone or finished is not an error."""
        try:
            await self._client.raise_event(instance_id, event, payload)
        except Exception as exc:  # the SDK raises plain Exceptions for 404/410
            message = str(exc)
            # 404/410 from the host's HTTP API; "is gone: either completed or failed" from the
            # SDK when the instance finished (a reply after the journey's last step).
            lowered = message.lower()
            if (
                "404" in message
                or "410" in message
                or "not found" in lowered
                or "is gone" in lowered
            ):
                log.info("event %s for %s not delivered: %s", event, instance_id, message)
                return
            raise

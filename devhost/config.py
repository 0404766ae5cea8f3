"""host.json and devhost's own settings."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_ROUTE_PREFIX = "api"
# Core Tools' default task hub name when host.json names none.
DEFAULT_HUB_NAME = "TestHubName"
# Service Bus queues default to MaxDeliveryCount 10 (Azure portal / ARM default).
DEFAULT_MAX_DELIVERY_COUNT = 10


def _get(tree: dict[str, Any], *path: str) -> Any:
    node: Any = tree
    for key in path:
        if not isinstance(node, dict):
            return None
        # host.json keys are case-insensitive in the host.
        lowered = {str(k).lower(): v for k, v in node.items()}
        node = lowered.get(key.lower())
    return node


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = DEFAULT_ROUTE_PREFIX
    hub_name: str = DEFAULT_HUB_NAME
    max_concurrent_activities: int = 16
    max_concurrent_orchestrations: int = 8
    service_bus_max_concurrent_calls: int = 16
    service_bus_max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT
    service_bus_lock_seconds: float = 60.0

    @classmethod
    def load(cls, app_dir: Path) -> HostConfig:
        path = app_dir / "host.json"
        tree: dict[str, Any] = {}
        if path.is_file():
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                tree = loaded
        route_prefix = _get(tree, "extensions", "http", "routePrefix")
        hub = _get(tree, "extensions", "durableTask", "hubName")
        activities = _get(tree, "extensions", "durableTask", "maxConcurrentActivityFunctions")
        orchestrations = _get(
            tree, "extensions", "durableTask", "maxConcurrentOrchestratorFunctions"
        )
        sb_calls = _get(tree, "extensions", "serviceBus", "maxConcurrentCalls")
        if sb_calls is None:
            sb_calls = _get(
                tree, "extensions", "serviceBus", "messageHandlerOptions", "maxConcurrentCalls"
            )
        max_delivery = os.environ.get("DEVHOST_SERVICEBUS_MAX_DELIVERY_COUNT")
        lock_seconds = os.environ.get("DEVHOST_SERVICEBUS_LOCK_SECONDS")
        defaults = cls()
        return cls(
            route_prefix=str(route_prefix) if route_prefix is not None else DEFAULT_ROUTE_PREFIX,
            hub_name=str(hub) if hub else DEFAULT_HUB_NAME,
            max_concurrent_activities=int(activities or defaults.max_concurrent_activities),
            max_concurrent_orchestrations=int(
                orchestrations or defaults.max_concurrent_orchestrations
            ),
            service_bus_max_concurrent_calls=int(
                sb_calls or defaults.service_bus_max_concurrent_calls
            ),
            service_bus_max_delivery_count=int(max_delivery or DEFAULT_MAX_DELIVERY_COUNT),
            service_bus_lock_seconds=float(lock_seconds or defaults.service_bus_lock_seconds),
        )

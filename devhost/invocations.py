"""Per-invocation log lines and a bounded in-memory record for /admin/devhost/invocations."""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from devhost.store import utcnow

log = logging.getLogger("devhost.invocations")


@dataclass(frozen=True)
class Invocation:
    at: datetime
    function: str
    trigger: str
    instance_id: str | None
    duration_ms: float
    outcome: str
    error: str | None


class InvocationLog:
    def __init__(self, capacity: int = 2000) -> None:
        self._records: deque[Invocation] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def record(
        self,
        *,
        function: str,
        trigger: str,
        instance_id: str | None,
        duration_ms: float,
        outcome: str,
        error: str | None = None,
    ) -> None:
        item = Invocation(utcnow(), function, trigger, instance_id, duration_ms, outcome, error)
        with self._lock:
            self._records.append(item)
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
        level = logging.WARNING if error else logging.DEBUG if trigger in _CHATTY else logging.INFO
        log.log(
            level,
            "Executed '%s' (%s%s, %.1f ms)%s",
            function,
            outcome,
            f", instance={instance_id}" if instance_id else "",
            duration_ms,
            f": {error}" if error else "",
        )

    def recent(self, limit: int = 200) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._records)[-limit:]
        rows = []
        for item in reversed(items):
            row = asdict(item)
            row["at"] = item.at.isoformat()
            rows.append(row)
        return rows


# Durable work is high volume: log each invocation at DEBUG and failures at WARNING.
_CHATTY = frozenset({"activityTrigger", "orchestrationTrigger"})

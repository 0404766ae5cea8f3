"""Refused credentials: every refusal is counted and logged; audit records are rate-limited.

An attacker spraying bad tokens must not be able to flood the audit chain, so at most
`audit_per_window` records per (tenant, reason) are written per window; each carries how
many refusals it stands for. The credential itself is never recorded.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.audit.schemas import Actor, ActorType, AuditEventType
from shared.audit.service import AuditChain, PlatformAuditChain
from shared.db.unit_of_work import directory_unit_of_work, tenant_unit_of_work

log = logging.getLogger("asep.auth")

AuditSink = Callable[[str, "uuid.UUID | None", int], None]


@dataclass
class _Window:
    started: float
    written: int = 0
    suppressed: int = 0


@dataclass
class RefusalLog:
    audit_sink: AuditSink | None = None
    audit_per_window: int = 10
    window_seconds: float = 60.0
    clock: Callable[[], float] = time.monotonic
    counts: Counter[str] = field(default_factory=Counter)
    _windows: dict[tuple[uuid.UUID | None, str], _Window] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, reason: str, tenant_id: uuid.UUID | None) -> None:
        log.warning(
            "credential refused",
            extra={"reason": reason, "refused_tenant": str(tenant_id) if tenant_id else None},
        )
        with self._lock:
            self.counts[reason] += 1
            key = (tenant_id, reason)
            now = self.clock()
            window = self._windows.get(key)
            if window is None or now - window.started >= self.window_seconds:
                carried = window.suppressed if window is not None else 0
                window = _Window(started=now, suppressed=carried)
                self._windows[key] = window
            if window.written >= self.audit_per_window:
                window.suppressed += 1
                return
            window.written += 1
            represented = 1 + window.suppressed
            window.suppressed = 0
        if self.audit_sink is not None:
            try:
                self.audit_sink(reason, tenant_id, represented)
            except Exception:
                # A refusal must stay a 401 even if the audit store is down; the log line stands.
                log.exception("could not audit a refused credential")


def audit_refusal(reason: str, tenant_id: uuid.UUID | None, represented: int) -> None:
    """The audit sink: the tenant's chain when the token named one, else the platform chain."""
    actor = Actor(type=ActorType.SYSTEM, id="authentication")
    payload = {"reason": reason, "refusals": represented}
    if tenant_id is not None:
        with tenant_unit_of_work(tenant_id) as uow:
            AuditChain.append(uow, AuditEventType.AUTH_REFUSED, actor, payload)
    else:
        with directory_unit_of_work() as duow:
            PlatformAuditChain.append(duow, AuditEventType.AUTH_REFUSED, actor, payload)

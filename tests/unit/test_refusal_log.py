"""Refusals are all counted, but audited at a bounded rate."""

from __future__ import annotations

import uuid

from shared.identity.refusals import RefusalLog


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_of_refusals_writes_a_bounded_number_of_audit_records() -> None:
    written: list[tuple[str, uuid.UUID | None, int]] = []
    clock = FakeClock()
    refusals = RefusalLog(
        audit_sink=lambda reason, tenant, count: written.append((reason, tenant, count)),
        audit_per_window=10,
        window_seconds=60,
        clock=clock,
    )
    tenant = uuid.uuid4()
    for _ in range(500):
        refusals.record("bad signature", tenant)
    assert refusals.counts["bad signature"] == 500
    assert len(written) == 10

    clock.now += 61
    refusals.record("bad signature", tenant)
    # The first record of the new window stands for itself and the 490 suppressed before it.
    assert written[-1] == ("bad signature", tenant, 491)
    assert sum(count for _, _, count in written) == 501


def test_each_tenant_and_reason_has_its_own_budget() -> None:
    written: list[tuple[str, uuid.UUID | None, int]] = []
    refusals = RefusalLog(
        audit_sink=lambda reason, tenant, count: written.append((reason, tenant, count)),
        audit_per_window=1,
        clock=FakeClock(),
    )
    refusals.record("expired", None)
    refusals.record("expired", uuid.uuid4())
    refusals.record("unknown kid", None)
    refusals.record("expired", None)
    assert len(written) == 3


def test_an_audit_failure_does_not_escape() -> None:
    def broken(reason: str, tenant: uuid.UUID | None, count: int) -> None:
        raise RuntimeError("audit store down")

    RefusalLog(audit_sink=broken).record("expired", None)

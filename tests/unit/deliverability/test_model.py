"""Cap windows in the mailbox's zone, the health score, address and domain rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.deliverability.model import (
    HealthStatus,
    InvalidAddress,
    assess_health,
    day_window,
    domain_and_parents,
    hour_window,
    normalize_address,
    normalize_domain,
    throttled_cap,
)

NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")


def test_day_window_is_the_local_calendar_day() -> None:
    # 03:00 UTC on 10 Jan is 22:00 on 9 Jan in New York (UTC-5).
    window = day_window(datetime(2026, 1, 10, 3, 0, tzinfo=UTC), NEW_YORK)
    assert window.start == datetime(2026, 1, 9, 5, 0, tzinfo=UTC)
    assert window.end == datetime(2026, 1, 10, 5, 0, tzinfo=UTC)


def test_day_window_spans_23_and_25_hours_across_dst() -> None:
    spring = day_window(datetime(2026, 3, 8, 12, 0, tzinfo=UTC), NEW_YORK)
    assert spring.end - spring.start == timedelta(hours=23)
    autumn = day_window(datetime(2026, 11, 1, 12, 0, tzinfo=UTC), NEW_YORK)
    assert autumn.end - autumn.start == timedelta(hours=25)


def test_hour_window_follows_half_hour_offsets() -> None:
    # Kolkata is UTC+5:30: its hours start at :30 UTC.
    window = hour_window(datetime(2026, 1, 10, 10, 45, tzinfo=UTC), KOLKATA)
    assert window.start == datetime(2026, 1, 10, 10, 30, tzinfo=UTC)
    assert window.end == datetime(2026, 1, 10, 11, 30, tzinfo=UTC)


def test_the_repeated_hour_at_fall_back_is_two_windows() -> None:
    first = hour_window(datetime(2026, 11, 1, 5, 30, tzinfo=UTC), NEW_YORK)  # 01:30 EDT
    second = hour_window(datetime(2026, 11, 1, 6, 30, tzinfo=UTC), NEW_YORK)  # 01:30 EST
    assert first.start != second.start
    assert first.end == second.start


@pytest.mark.parametrize(
    ("sent", "bounces", "complaints", "status"),
    [
        (1000, 0, 0, HealthStatus.OK),
        (1000, 0, 0 + 0, HealthStatus.OK),
        (10000, 0, 9, HealthStatus.OK),  # 0.09%
        (10000, 0, 10, HealthStatus.THROTTLE),  # 0.10%: Gmail's "keep below"
        (10000, 0, 29, HealthStatus.THROTTLE),
        (10000, 0, 30, HealthStatus.PAUSE),  # 0.30%: Gmail's "never reach"
        (1000, 19, 0, HealthStatus.OK),
        (1000, 20, 0, HealthStatus.THROTTLE),
        (1000, 50, 0, HealthStatus.PAUSE),
        (1000, 20, 3, HealthStatus.PAUSE),
        (50, 10, 5, HealthStatus.OK),  # too few sends to judge
    ],
)
def test_health_status_thresholds(sent: int, bounces: int, complaints: int, status: str) -> None:
    assert assess_health(sent, bounces, complaints).status == status


def test_health_score_falls_with_the_worse_rate() -> None:
    clean = assess_health(1000, 0, 0)
    assert clean.score == 1.0
    bouncy = assess_health(1000, 25, 0)
    assert bouncy.score == pytest.approx(0.5)
    complained = assess_health(10000, 0, 30)
    assert complained.score == 0.0
    assert complained.reasons
    assert "complaint rate" in complained.reasons[0]
    with pytest.raises(ValueError, match="negative"):
        assess_health(-1, 0, 0)


def test_throttled_caps() -> None:
    assert throttled_cap(40, HealthStatus.OK) == 40
    assert throttled_cap(40, HealthStatus.THROTTLE) == 20
    assert throttled_cap(40, HealthStatus.PAUSE) == 0


def test_addresses_and_domains_normalize_or_refuse() -> None:
    assert normalize_address("  Jane.Doe@Example.COM ") == "jane.doe@example.com"
    with pytest.raises(InvalidAddress):
        normalize_address("not an address")
    assert normalize_domain("@Sub.Example.com.") == "sub.example.com"
    assert normalize_domain("bücher.example") == "xn--bcher-kva.example"
    for bad in ("localhost", "-bad.example", "a..b", "exa mple.com"):
        with pytest.raises(InvalidAddress):
            normalize_domain(bad)
    assert domain_and_parents("a.b.example.co.uk") == [
        "a.b.example.co.uk",
        "b.example.co.uk",
        "example.co.uk",
        "co.uk",
    ]

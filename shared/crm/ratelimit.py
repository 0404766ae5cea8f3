"""Client-side limits for HubSpot, per tenant (one HubSpot account per tenant).

HubSpot counts requests in a rolling 10-second window and per day
(https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines):
Free/Starter 100 / 10 s and 250k/day, Professional 190 / 10 s and 625k/day, Enterprise
190 / 10 s and 1M/day for private apps; OAuth apps get 110 / 10 s per installing account;
CRM search 5 requests/s. The daily cap is shared by every app in the account, so we keep to
a share of it. A token bucket would allow two windows' worth inside one rolling window, so
this is a sliding log of send times: a request waits until fewer than `max_requests` were
sent in the last `window_seconds` (plus a margin for arrival jitter at HubSpot's end).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.crm.port import CrmUnavailable


@dataclass(frozen=True)
class RateTier:
    name: str
    max_requests: int
    window_seconds: float
    daily_cap: int
    search_per_second: int = 5


TIERS: dict[str, RateTier] = {
    "free_starter": RateTier("free_starter", 100, 10.0, 250_000),
    "professional": RateTier("professional", 190, 10.0, 625_000),
    "enterprise": RateTier("enterprise", 190, 10.0, 1_000_000),
    "oauth": RateTier("oauth", 110, 10.0, 250_000),
}

# Apps share the account's daily cap with the customer's other integrations.
DAILY_SHARE = 0.8


class DailyCapReached(CrmUnavailable):
    """This tenant's share of the HubSpot daily cap is used up; writes wait until tomorrow."""


@dataclass
class SlidingWindow:
    max_requests: int
    window_seconds: float
    # Arrival jitter: a request sent just inside our window may land just inside HubSpot's
    # previous one. A small pad keeps the server's count at or below its limit.
    margin_seconds: float = 0.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _sent: deque[float] = field(default_factory=deque)
    _blocked_until: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self) -> float:
        """Block until a request may go; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self.clock()
                horizon = self.window_seconds + self.margin_seconds
                while self._sent and now - self._sent[0] >= horizon:
                    self._sent.popleft()
                if now < self._blocked_until:
                    delay = self._blocked_until - now
                elif len(self._sent) < self.max_requests:
                    self._sent.append(now)
                    return waited
                else:
                    delay = self._sent[0] + horizon - now
            self.sleep(delay)
            waited += delay

    def pause_until(self, seconds: float) -> None:
        """After a 429: no request from this tenant for `seconds` (HubSpot's Retry-After)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, self.clock() + seconds)


@dataclass
class DailyBudget:
    cap: int
    used: int = 0
    day: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> None:
        today = datetime.now(UTC).date().isoformat()
        with self._lock:
            if today != self.day:
                self.day, self.used = today, 0
            if self.used >= self.cap:
                raise DailyCapReached(
                    f"this tenant's share of the HubSpot daily limit ({self.cap}) is used up"
                )
            self.used += 1


@dataclass
class TenantLimiter:
    general: SlidingWindow
    search: SlidingWindow
    daily: DailyBudget

    def before_request(self, *, search: bool = False) -> None:
        self.daily.take()
        if search:
            self.search.acquire()
        self.general.acquire()


def limiter_for_tier(tier: RateTier, *, margin_seconds: float | None = None) -> TenantLimiter:
    margin = tier.window_seconds * 0.03 if margin_seconds is None else margin_seconds
    return TenantLimiter(
        general=SlidingWindow(tier.max_requests, tier.window_seconds, margin),
        search=SlidingWindow(tier.search_per_second, 1.0, min(margin, 0.05)),
        daily=DailyBudget(int(tier.daily_cap * DAILY_SHARE)),
    )


class LimiterRegistry:
    """One limiter per tenant per process. Across instances, HubSpot's 429 + Retry-After is the
    backstop; the per-instance log keeps one instance from ever tripping it alone."""

    def __init__(self, tier: RateTier) -> None:
        self._tier = tier
        self._limiters: dict[str, TenantLimiter] = {}
        self._lock = threading.Lock()

    def for_tenant(self, key: str) -> TenantLimiter:
        with self._lock:
            found = self._limiters.get(key)
            if found is None:
                found = self._limiters[key] = limiter_for_tier(self._tier)
            return found

"""Deliverability rules with no I/O: addresses, cap windows, the health score."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

# Google's sender guidelines (support.google.com/a/answer/81126): keep the spam rate below
# 0.10% and never reach 0.30%. Yahoo publishes the same 0.3% ceiling.
COMPLAINT_THROTTLE_RATE = 0.001
COMPLAINT_PAUSE_RATE = 0.003
# Bounce ceilings follow the common ESP practice (2% warns, 5% suspends, e.g. Amazon SES
# review thresholds); providers publish no single figure.
BOUNCE_THROTTLE_RATE = 0.02
BOUNCE_PAUSE_RATE = 0.05
# Rates over fewer sends than this are noise: one bounce in ten sends is not a 10% problem.
MIN_HEALTH_SAMPLE = 100


class CapScope(StrEnum):
    MAILBOX_DAY = "mailbox_day"
    MAILBOX_HOUR = "mailbox_hour"
    MAILBOX_NEW_DAY = "mailbox_new_day"
    CAMPAIGN_DAY = "campaign_day"
    TENANT_DAY = "tenant_day"


class HealthStatus(StrEnum):
    OK = "ok"
    THROTTLE = "throttle"
    PAUSE = "pause"


class SuppressionKind(StrEnum):
    ADDRESS = "address"
    DOMAIN = "domain"


class InvalidAddress(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class MailboxSnapshot:
    """A mailbox's sending state as one send reads it (the gate, with its other reads)."""

    id: uuid.UUID
    address: str
    provider: str
    time_zone: str
    status: str
    daily_cap: int
    hourly_cap: int
    new_recipients_cap: int
    health_score: float
    health_status: str
    bounce_rate: float
    complaint_rate: float


def normalize_address(raw: str) -> str:
    """A syntactically valid address, lowercased (we never rely on local-part case)."""
    try:
        checked = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from exc
    return checked.normalized.lower()


def normalize_domain(raw: str) -> str:
    """A lowercase DNS name in its ASCII form (IDNA), without a trailing dot."""
    domain = raw.strip().rstrip(".").lower()
    if domain.startswith("@"):
        domain = domain[1:]
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidAddress(f"'{raw}' is not a domain name") from exc
    labels = ascii_domain.split(".")
    if len(labels) < 2 or len(ascii_domain) > 253 or not all(_valid_label(lb) for lb in labels):
        raise InvalidAddress(f"'{raw}' is not a domain name")
    return ascii_domain


def _valid_label(label: str) -> bool:
    return (
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isalnum() or c == "-" for c in label)
    )


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[1]


def domain_and_parents(domain: str) -> list[str]:
    """`a.b.example.com` -> [a.b.example.com, b.example.com, example.com]: a suppressed
    domain covers its subdomains. The bare TLD is never a candidate."""
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone '{name}'") from exc


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def day_window(now: datetime, zone: ZoneInfo) -> Window:
    """The mailbox's local calendar day containing `now` (23 or 25 hours across DST)."""
    local = now.astimezone(zone)
    start = datetime(local.year, local.month, local.day, tzinfo=zone)
    following = start.date() + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=zone)
    return Window(_utc(start), _utc(end))


def hour_window(now: datetime, zone: ZoneInfo) -> Window:
    """The local clock hour containing `now`; zones with :30 or :45 offsets differ from UTC's.

    Computed on absolute time so the repeated hour at a DST fall-back is two windows.
    """
    local = now.astimezone(zone)
    into_hour = timedelta(
        minutes=local.minute, seconds=local.second, microseconds=local.microsecond
    )
    start = now - into_hour
    return Window(_utc(start), _utc(start + timedelta(hours=1)))


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(ZoneInfo("UTC"))


@dataclass(frozen=True)
class HealthAssessment:
    score: float
    status: HealthStatus
    bounce_rate: float
    complaint_rate: float
    sample_size: int
    reasons: tuple[str, ...]


def assess_health(sent: int, bounces: int, complaints: int) -> HealthAssessment:
    """Score a mailbox from its recent sends, bounces and spam complaints.

    The score is 1.0 for a clean record and falls linearly to 0 as either rate approaches its
    pause point; the status says what the sender must do (Gmail/Yahoo complaint thresholds).
    """
    if sent < 0 or bounces < 0 or complaints < 0:
        raise ValueError("counts are never negative")
    bounce_rate = bounces / sent if sent else 0.0
    complaint_rate = complaints / sent if sent else 0.0
    if sent < MIN_HEALTH_SAMPLE:
        return HealthAssessment(1.0, HealthStatus.OK, bounce_rate, complaint_rate, sent, ())
    reasons: list[str] = []
    status = HealthStatus.OK
    if complaint_rate >= COMPLAINT_PAUSE_RATE:
        status = HealthStatus.PAUSE
        reasons.append(f"complaint rate {complaint_rate:.3%} >= {COMPLAINT_PAUSE_RATE:.1%}")
    elif complaint_rate >= COMPLAINT_THROTTLE_RATE:
        status = HealthStatus.THROTTLE
        reasons.append(f"complaint rate {complaint_rate:.3%} >= {COMPLAINT_THROTTLE_RATE:.1%}")
    if bounce_rate >= BOUNCE_PAUSE_RATE:
        status = HealthStatus.PAUSE
        reasons.append(f"bounce rate {bounce_rate:.2%} >= {BOUNCE_PAUSE_RATE:.0%}")
    elif bounce_rate >= BOUNCE_THROTTLE_RATE:
        if status is HealthStatus.OK:
            status = HealthStatus.THROTTLE
        reasons.append(f"bounce rate {bounce_rate:.2%} >= {BOUNCE_THROTTLE_RATE:.0%}")
    complaint_headroom = 1.0 - min(complaint_rate / COMPLAINT_PAUSE_RATE, 1.0)
    bounce_headroom = 1.0 - min(bounce_rate / BOUNCE_PAUSE_RATE, 1.0)
    score = round(min(complaint_headroom, bounce_headroom), 4)
    return HealthAssessment(score, status, bounce_rate, complaint_rate, sent, tuple(reasons))


def throttled_cap(cap: int, status: HealthStatus) -> int:
    """A throttled mailbox sends at half its caps; a paused one sends nothing."""
    if status is HealthStatus.PAUSE:
        return 0
    if status is HealthStatus.THROTTLE:
        return cap // 2
    return cap

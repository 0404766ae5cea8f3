"""Deal gating rules that need no I/O: what a policy decision means for a reply's deal."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.deals.schemas import GateOutcome
from shared.policy.schemas import Decision, Effect

# The default pack's dedupe rule. A deal denied by this rule alone is updated instead of
# duplicated; a tenant pack that renames it makes such replies blocked (the safe side).
DEDUPE_RULE_ID = "deal-dedupe-window"
DEFAULT_DEDUPE_WINDOW_DAYS = 30
# The next step after a positive reply is due within a working day.
NEXT_STEP_DUE = timedelta(days=1)


def dedupe_window_days(settings: dict[str, object] | None) -> int:
    """The tenant's `dedupe_window_days` setting (days, at least 1), 30 when unset or bad."""
    value = (settings or {}).get("dedupe_window_days", DEFAULT_DEDUPE_WINDOW_DAYS)
    try:
        days = int(str(value))
    except ValueError:
        return DEFAULT_DEDUPE_WINDOW_DAYS
    return days if days >= 1 else DEFAULT_DEDUPE_WINDOW_DAYS


def window_start(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


def gate_outcome(decision: Decision, existing_deal_in_window: bool) -> GateOutcome:
    """AUTO / APPROVAL when the policy allows a deal; UPDATE when the only thing between the
    reply and a deal is the deal that already exists in the window; NONE otherwise."""
    if decision.deal_create_allowed:
        return GateOutcome.APPROVAL if decision.deal_create_requires_approval else GateOutcome.AUTO
    if not existing_deal_in_window or not decision.allowed:
        return GateOutcome.NONE
    denials = {r.rule_id for r in decision.reasons if r.effect is Effect.DENY_DEAL}
    would_allow = any(
        r.effect in (Effect.ALLOW_DEAL, Effect.DEAL_REQUIRES_APPROVAL) for r in decision.reasons
    )
    return GateOutcome.UPDATE if denials == {DEDUPE_RULE_ID} and would_allow else GateOutcome.NONE


def company_domain_of(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].strip().lower() or None


def deal_name(company_name: str | None, domain: str | None, email: str, why: str) -> str:
    return f"{company_name or domain or email} ({why})"[:200]

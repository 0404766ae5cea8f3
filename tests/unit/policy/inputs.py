"""Policy inputs for tests: a clean follow-up send that the default pack allows, and helpers
to change any part of it."""

from __future__ import annotations

from typing import Any

from shared.policy.schemas import PolicyInput

CLEAN_SEND: dict[str, Any] = {
    "action": {
        "type": "send",
        "stage": "send",
        "campaign_id": "c-1",
        "sequence_step": 2,
        "touch_number": 2,
        "is_first_touch": False,
    },
    "tenant": {"id": "t-1"},
    "campaign": {"id": "c-1", "status": "active", "mode": "active"},
    "mailbox": {"id": "m-1", "health_score": 0.95, "new_recipients_today": 3},
    "recipient": {
        "email": "jo@acme.com",
        "domain": "acme.com",
        "tld": "com",
        "previously_contacted": True,
    },
}

POSITIVE_REPLY_DEAL: dict[str, Any] = {
    "action": {"type": "deal_create", "stage": "reply", "is_first_touch": False},
    "recipient": {"email": "jo@acme.com", "domain": "acme.com", "tld": "com"},
    "reply": {"classification": "positive", "confidence": 0.9, "touch_number": 1},
    "deal": {"source": "reply"},
}


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    result = {section: dict(values) for section, values in base.items()}
    for section, values in changes.items():
        result.setdefault(section, {}).update(values)
    return result


def policy_input(base: dict[str, Any] = CLEAN_SEND, **changes: dict[str, Any]) -> PolicyInput:
    return PolicyInput.model_validate(merged(base, changes))

"""ASEP_HUBSPOT_RATE_TIER names one of the limiter's tiers; a typo fails at startup instead
of silently pacing at another tier's limit."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from shared.config import Settings
from shared.crm.ratelimit import TIERS


def test_every_allowed_tier_has_limits_and_every_tier_is_allowed() -> None:
    allowed = typing.get_args(Settings.model_fields["hubspot_rate_tier"].annotation)
    assert set(allowed) == set(TIERS)


def test_an_unknown_tier_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASEP_HUBSPOT_RATE_TIER", "pro")
    with pytest.raises(ValidationError, match="hubspot_rate_tier"):
        Settings()

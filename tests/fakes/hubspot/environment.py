"""A HubSpotEnvironment pointed at a FakeHubSpot, with test-sized waits."""

from __future__ import annotations

import uuid

from pydantic import SecretStr

from shared.config import get_settings
from shared.crm.hubspot_api import HubSpotApi, HubSpotOAuth, RetryPolicy
from shared.crm.integrations import HubSpotEnvironment
from shared.crm.ratelimit import LimiterRegistry, RateTier
from shared.secrets.port import InMemoryKeyWrapper
from tests.fakes.hubspot.server import FakeHubSpot

REDIRECT_URI = "http://localhost:7071/v1/integrations/hubspot/callback"


def fake_environment(
    fake: FakeHubSpot,
    *,
    max_requests: int | None = None,
    window_seconds: float | None = None,
    backoff_base: float = 0.01,
) -> HubSpotEnvironment:
    settings = get_settings().model_copy(
        update={
            "hubspot_client_id": fake.client_id,
            "hubspot_client_secret": SecretStr(fake.client_secret),
            "hubspot_redirect_uri": REDIRECT_URI,
            "hubspot_api_base_url": fake.url,
        }
    )
    tier = RateTier(
        "test",
        max_requests if max_requests is not None else fake.max_requests,
        window_seconds if window_seconds is not None else fake.window_seconds,
        daily_cap=10_000_000,
        search_per_second=fake.search_per_second,
    )
    registry = LimiterRegistry(tier)

    def api(tenant_id: uuid.UUID, token: str) -> HubSpotApi:
        return HubSpotApi(
            token,
            registry.for_tenant(str(tenant_id)),
            host=fake.url,
            retry=RetryPolicy(backoff_base=backoff_base, default_retry_after=0.2),
        )

    def oauth() -> HubSpotOAuth:
        return HubSpotOAuth(fake.client_id, fake.client_secret, host=fake.url)

    return HubSpotEnvironment(settings, InMemoryKeyWrapper(), oauth, api)

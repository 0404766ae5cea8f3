"""HubSpot write throughput against a fake HubSpot that enforces a tier's documented burst
limit, through the real `hubspot-api-client` and ASEP's per-tenant limiter. Prints JSON.

    .venv/bin/python bench/crm_sync.py [--tier free_starter] [--seconds 35] [--workers 4]

The fake answers 429 (with Retry-After) the moment a rolling window holds more requests
than the tier allows (Free/Starter 100 / 10 s, Professional/Enterprise 190 / 10 s, OAuth
apps 110 / 10 s: https://developers.hubspot.com/docs/developer-tooling/platform/usage-
guidelines). The workload is HubSpot writes as ASEP sends them: contact upserts by email
and note creates, `--records` per batch request (HubSpot's maximum is 100).

`ratio_of_limit` is the requests sent in the run's whole windows (k x 10 s from the start)
over k x the tier's limit; a rolling window caps any 10 s at the limit, so 1.0 is the
ceiling (times are taken when each answer arrives; the fake's 429 count is the check that no
rolling window at HubSpot's end went over). Goals: ratio_of_limit >= 0.9 and 0 429s from the fake.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# The fake server lives in tests/; the repo root must come before site-packages, where
# azure-functions-durable installs a `tests` package of its own.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.crm.hubspot_api import (
    MARKER_PROPERTY,
    Association,
    HubSpotApi,
    HubSpotOAuth,
)
from shared.crm.ratelimit import TIERS, limiter_for_tier
from tests.fakes.hubspot.server import FakeHubSpot


def _writer(
    api: HubSpotApi, worker: int, records: int, stop_at: float, started: float, sent: list[float]
) -> int:
    written = 0
    batch = 0
    while time.monotonic() < stop_at:
        batch += 1
        if batch % 2:
            rows = [
                (f"w{worker}-{batch}-{i}@bench.example", {"email": f"w{worker}-{batch}-{i}@x.io"})
                for i in range(records)
            ]
            written += len(api.batch_upsert("contacts", "email", rows))
        else:
            notes: list[tuple[dict[str, str], list[Association]]] = [
                (
                    {
                        "hs_timestamp": "2026-11-27T10:00:00.000Z",
                        "hs_note_body": "bench",
                        MARKER_PROPERTY: str(uuid.uuid4()),
                    },
                    [],
                )
                for _ in range(records)
            ]
            written += len(api.batch_create("notes", notes))
        sent.append(time.monotonic() - started)
    return written


def run(tier_name: str, seconds: float, records: int, workers: int) -> dict[str, Any]:
    tier = TIERS[tier_name]
    fake = FakeHubSpot(
        max_requests=tier.max_requests,
        window_seconds=tier.window_seconds,
        search_per_second=tier.search_per_second,
    ).start()
    try:
        oauth = HubSpotOAuth(fake.client_id, fake.client_secret, host=fake.url)
        token = oauth.exchange_code(fake.authorize(), "http://localhost/cb").access_token
        # One tenant: every worker shares the tenant's limiter, as pushes in one process do.
        limiter = limiter_for_tier(tier)
        apis = [HubSpotApi(token, limiter, host=fake.url) for _ in range(workers)]
        apis[0].ensure_marker_property("notes")
        setup_requests = fake.stats.requests
        sent: list[float] = []
        started = time.monotonic()
        with ThreadPoolExecutor(workers) as pool:
            futures = [
                pool.submit(_writer, api, n, records, started + seconds, started, sent)
                for n, api in enumerate(apis)
            ]
            written = sum(f.result() for f in futures)
        elapsed = time.monotonic() - started
        throttled = sum(api.throttled for api in apis)
    finally:
        fake.stop()
    sent.sort()
    rate = tier.max_requests / tier.window_seconds
    windows = int(elapsed // tier.window_seconds)
    in_windows = sum(1 for t in sent if t < windows * tier.window_seconds)
    return {
        "tier": tier.name,
        "limit": f"{tier.max_requests} / {tier.window_seconds:g} s",
        "seconds": round(elapsed, 2),
        "requests": len(sent),
        "whole_windows": windows,
        "requests_in_whole_windows": in_windows,
        "ratio_of_limit": round(in_windows / (windows * tier.max_requests), 3) if windows else None,
        "requests_per_second": round(len(sent) / elapsed, 2),
        "limit_per_second": rate,
        "records_written": written,
        "records_per_second": round(written / elapsed, 1),
        "fake_429s": fake.stats.enforced_429,
        "client_retries_after_429": throttled,
        "workers": workers,
        "setup_requests": setup_requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="free_starter", choices=sorted(TIERS))
    parser.add_argument("--seconds", type=float, default=35.0)
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps(run(args.tier, args.seconds, args.records, args.workers), indent=2))


if __name__ == "__main__":
    main()

"""The real hubspot-api-client against the fake HubSpot: paths, shapes, errors, limits."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
from hubspot import HubSpot
from hubspot.crm.associations.v4 import AssociationSpec

from shared.crm.hubspot_api import (
    MARKER_PROPERTY,
    Association,
    CrmConflict,
    HubSpotApi,
    HubSpotOAuth,
    RetryPolicy,
)
from shared.crm.port import CrmRejected
from shared.crm.ratelimit import DailyBudget, SlidingWindow, TenantLimiter
from tests.fakes.hubspot import FakeHubSpot

REDIRECT = "http://localhost/cb"


@pytest.fixture
def fake() -> Iterator[FakeHubSpot]:
    server = FakeHubSpot(max_requests=50, window_seconds=1.0).start()
    yield server
    server.stop()


def limiter(max_requests: int = 10_000, window: float = 1.0) -> TenantLimiter:
    return TenantLimiter(
        SlidingWindow(max_requests, window, 0.02), SlidingWindow(5, 1.0, 0.02), DailyBudget(10**9)
    )


def token(fake: FakeHubSpot) -> str:
    oauth = HubSpotOAuth(fake.client_id, fake.client_secret, host=fake.url)
    return oauth.exchange_code(fake.authorize(), REDIRECT).access_token


def api_for(fake: FakeHubSpot, lim: TenantLimiter | None = None) -> HubSpotApi:
    return HubSpotApi(
        token(fake), lim or limiter(), host=fake.url, retry=RetryPolicy(backoff_base=0.01)
    )


def test_oauth_code_exchange_token_info_and_refresh(fake: FakeHubSpot) -> None:
    oauth = HubSpotOAuth(fake.client_id, fake.client_secret, host=fake.url)
    grant = oauth.exchange_code(fake.authorize(portal_id=777), REDIRECT)
    info = oauth.token_info(grant.access_token)
    assert info.hub_id == "777"
    assert "oauth" in info.scopes
    refreshed = oauth.refresh(grant.refresh_token)
    assert refreshed.access_token != grant.access_token
    assert refreshed.expires_in > 0
    with pytest.raises(CrmRejected, match="missing or unknown auth code"):
        oauth.exchange_code("not-a-code", REDIRECT)
    fake.revoke(777)
    with pytest.raises(CrmRejected, match="refresh token"):
        oauth.refresh(grant.refresh_token)


def test_contacts_upsert_by_email_read_back_and_list_with_after_cursors(fake: FakeHubSpot) -> None:
    api = api_for(fake)
    rows = [
        (f"p{i}@acme.example", {"email": f"p{i}@acme.example", "firstname": f"P{i}"})
        for i in range(25)
    ]
    first = api.batch_upsert("contacts", "email", rows)
    again = api.batch_upsert("contacts", "email", rows[:5])
    assert len(first) == 25
    assert all(o.new for o in first)
    assert [o.new for o in again] == [False] * 5
    assert fake.count("contacts") == 25
    read = api.batch_read(
        "contacts",
        ["p3@acme.example", "nobody@x.example"],
        id_property="email",
        properties=["firstname"],
    )
    assert [o.properties["firstname"] for o in read] == ["P3"]
    ids, after, pages = [], None, 0
    while True:
        page, after = api.list_page("contacts", after=after, limit=10, properties=["email"])
        ids += [o.id for o in page]
        pages += 1
        if after is None:
            break
    assert pages == 3
    assert len(set(ids)) == 25


def test_search_pages_with_after_and_counts_against_five_per_second(fake: FakeHubSpot) -> None:
    api = api_for(fake)
    api.ensure_marker_property("companies")
    for start in range(0, 150, 100):
        api.batch_create(
            "companies",
            [
                ({"domain": f"d{i}.example", MARKER_PROPERTY: f"c{i}"}, [])
                for i in range(start, min(start + 100, 150))
            ],
        )
    found = api.search_in("companies", "domain", [f"d{i}.example" for i in range(150)], ["domain"])
    assert len({o.id for o in found}) == 150
    assert fake.stats.enforced_429 == 0


def test_duplicate_unique_values_are_409_conflicts_with_hubspots_message(fake: FakeHubSpot) -> None:
    api = api_for(fake)
    api.ensure_marker_property("deals")
    api.ensure_marker_property("deals")  # idempotent: 409 on the second try is swallowed
    api.batch_create("deals", [({"dealname": "A", MARKER_PROPERTY: "k1"}, [])])
    with pytest.raises(CrmConflict, match="already exists"):
        api.batch_create("deals", [({"dealname": "A again", MARKER_PROPERTY: "k1"}, [])])
    client = HubSpot(access_token=token(fake), host=fake.url)
    from hubspot.crm.contacts import ApiException, SimplePublicObjectInputForCreate

    client.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "x@y.example"})
    )
    with pytest.raises(ApiException) as raised:
        client.crm.contacts.basic_api.create(
            SimplePublicObjectInputForCreate(properties={"email": "x@y.example"})
        )
    assert raised.value.status == 409
    assert "Contact already exists. Existing ID:" in raised.value.body
    assert fake.count("deals") == 1


def test_validation_errors_are_surfaced_and_never_retried(fake: FakeHubSpot) -> None:
    api = api_for(fake)
    before = fake.stats.requests
    with pytest.raises(CrmRejected) as rejected:
        api.batch_upsert(
            "contacts",
            "email",
            [("bad-address", {"email": "bad-address", "favourite_colour": "red"})],
        )
    message = str(rejected.value)
    assert "HubSpot 400: Property values were not valid" in message
    assert "favourite_colour" in message or "invalid" in message
    assert fake.stats.requests == before + 1
    api.ensure_marker_property("deals")
    bad_stage = {"dealname": "X", "pipeline": "default", "dealstage": "nope", MARKER_PROPERTY: "z"}
    with pytest.raises(CrmRejected, match="was not one of the allowed options"):
        api.batch_create("deals", [(bad_stage, [])])


def test_429_bursts_are_retried_after_retry_after_and_our_limiter_avoids_them(
    fake: FakeHubSpot,
) -> None:
    fake.max_requests, fake.window_seconds = 5, 1.0
    unthrottled = api_for(fake, limiter(max_requests=10_000))
    started = time.monotonic()
    for i in range(12):
        unthrottled.batch_upsert(
            "contacts", "email", [(f"r{i}@x.example", {"email": f"r{i}@x.example"})]
        )
    assert fake.stats.enforced_429 > 0
    assert unthrottled.throttled == fake.stats.enforced_429
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 honoured
    assert fake.count("contacts") == 12
    fake.stats.enforced_429 = 0
    time.sleep(1.1)
    paced = api_for(fake, limiter(max_requests=5, window=1.0))
    for i in range(12):
        paced.batch_upsert("contacts", "email", [(f"s{i}@x.example", {"email": f"s{i}@x.example"})])
    assert fake.stats.enforced_429 == 0


def test_v4_associations_carry_labels(fake: FakeHubSpot) -> None:
    api = api_for(fake)
    api.ensure_marker_property("companies")
    api.ensure_marker_property("deals")
    contact = api.batch_upsert(
        "contacts", "email", [("a@acme.example", {"email": "a@acme.example"})]
    )[0]
    company = api.batch_create(
        "companies", [({"domain": "acme.example", MARKER_PROPERTY: "co"}, [])]
    )[0]
    deal = api.batch_create("deals", [({"dealname": "D", MARKER_PROPERTY: "d"}, [])])[0]
    api.associate("contacts", "companies", [Association(contact.id, company.id, 1)])
    api.associate("deals", "contacts", [Association(deal.id, contact.id, 3)])
    assert api.associations("contacts", contact.id, "companies") == {company.id: ["Primary"]}
    assert api.associations("companies", company.id, "contacts") == {contact.id: ["Primary"]}
    assert api.associations("deals", deal.id, "contacts") == {contact.id: []}
    fake.add_label("deals", "contacts", 9001, "Decision maker")
    client = HubSpot(access_token=token(fake), host=fake.url)
    created = client.crm.associations.v4.basic_api.create(
        "deals",
        deal.id,
        "contacts",
        contact.id,
        [AssociationSpec(association_category="USER_DEFINED", association_type_id=9001)],
    )
    assert "Decision maker" in created.labels
    assert api.associations("deals", deal.id, "contacts") == {contact.id: ["Decision maker"]}
    with pytest.raises(CrmRejected, match="not a valid association type"):
        api.associate("deals", "contacts", [Association(deal.id, contact.id, 12345)])


def test_engagements_are_created_with_inline_associations(fake: FakeHubSpot) -> None:
    api = api_for(fake)
    for object_type in ("notes", "emails", "tasks", "meetings"):
        api.ensure_marker_property(object_type)
    contact = api.batch_upsert(
        "contacts", "email", [("e@acme.example", {"email": "e@acme.example"})]
    )[0]
    note = api.batch_create(
        "notes",
        [
            (
                {
                    "hs_timestamp": "2026-11-27T10:00:00.000Z",
                    "hs_note_body": "hi",
                    MARKER_PROPERTY: str(uuid.uuid4()),
                },
                [Association("", contact.id, 202)],
            )
        ],
    )[0]
    assert api.associations("notes", note.id, "contacts") == {contact.id: []}
    pipelines = api.deal_pipelines()
    assert {p.id for p in pipelines} == {"default", "outbound"}
    assert "closedwon" in next(p for p in pipelines if p.id == "default").stages

"""The HTTP skeleton: health, OpenAPI, problem+json for every kind of bad input."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from http_api.app import create_app
from http_api.auth import api_routes, public_endpoint, route_permissions
from shared.db.server import DatabaseUrls

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def app(database: DatabaseUrls) -> FastAPI:
    return create_app()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://asep.test") as client:
        yield client


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:asep:problem:{code}"
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


async def test_healthz_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}


async def test_openapi_document_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "ShaunAI ASEP API"


async def test_every_response_carries_request_and_correlation_ids(
    client: httpx.AsyncClient,
) -> None:
    fresh = await client.get("/healthz")
    assert len(fresh.headers["x-request-id"]) == 32
    assert fresh.headers["x-correlation-id"] == fresh.headers["x-request-id"]
    carried = await client.get("/healthz", headers={"X-Correlation-ID": "journey-42"})
    assert carried.headers["x-correlation-id"] == "journey-42"
    unsafe = await client.get("/healthz", headers={"X-Correlation-ID": "bad id\r\nx: y"})
    assert unsafe.headers["x-correlation-id"] == unsafe.headers["x-request-id"]


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v1/", "/healthz/extra"])
async def test_unknown_routes_are_404_problems(client: httpx.AsyncClient, path: str) -> None:
    body = assert_problem(await client.get(path), 404, "not_found")
    assert body["instance"] == path


async def test_wrong_method_is_a_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.post("/healthz", json={})
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]


class Item(BaseModel):
    name: str
    count: int


def _echo_app() -> FastAPI:
    app = create_app()

    @app.post("/v1/echo", dependencies=[public_endpoint()])
    async def echo(item: Item) -> Item:
        return item

    @app.get("/v1/boom", dependencies=[public_endpoint()])
    async def boom() -> None:
        raise RuntimeError("secret-internal-detail")

    return app


@pytest.fixture
async def echo_client(database: DatabaseUrls) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_echo_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://asep.test") as client:
        yield client


async def test_malformed_json_is_a_400_problem(echo_client: httpx.AsyncClient) -> None:
    response = await echo_client.post(
        "/v1/echo", content=b'{"name": "x", "count":', headers={"content-type": "application/json"}
    )
    assert_problem(response, 400, "malformed_json")


async def test_invalid_fields_are_a_422_problem_listing_each_error(
    echo_client: httpx.AsyncClient,
) -> None:
    response = await echo_client.post("/v1/echo", json={"name": 5, "count": "many"})
    body = assert_problem(response, 422, "validation_failed")
    errors = body["errors"]
    assert isinstance(errors, list)
    assert {tuple(error["location"]) for error in errors} == {("body", "name"), ("body", "count")}


async def test_oversized_bodies_are_a_413_problem(echo_client: httpx.AsyncClient) -> None:
    big = json.dumps({"name": "x" * 2_000_000, "count": 1}).encode()
    declared = await echo_client.post(
        "/v1/echo", content=big, headers={"content-type": "application/json"}
    )
    assert_problem(declared, 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 65_536

    streamed = await echo_client.post(
        "/v1/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(streamed, 413, "payload_too_large")


async def test_unhandled_errors_are_a_500_problem_without_internals(
    echo_client: httpx.AsyncClient,
) -> None:
    response = await echo_client.get("/v1/boom")
    body = assert_problem(response, 500, "internal_error")
    assert "secret-internal-detail" not in response.text
    assert "detail" not in body


def test_every_route_declares_exactly_one_permission(app: FastAPI) -> None:
    routes = api_routes(app)
    assert len(routes) > 5
    wrong = {entry.path: route_permissions(entry.route) for entry in routes}
    assert {path: found for path, found in wrong.items() if len(found) != 1} == {}


def test_permissions_are_published_in_the_openapi_document(app: FastAPI) -> None:
    document = app.openapi()
    operation = document["paths"]["/v1/users"]["get"]
    assert operation["x-asep-permission"] == "users:read"
    assert document["paths"]["/healthz"]["get"]["x-asep-permission"] == "public"

"""devhost fixtures: a database per xdist worker and devhost running as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import azure.durable_functions as df
import httpx
import pytest
from azure.durable_functions.models.utils import http_utils

from shared.db.server import (
    create_database,
    database_urls,
    drop_database,
    ensure_roles_and_database,
    libpq_dsn,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"
CONFORMANCE_APP = APPS / "durable_app"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_database(name: str) -> str:
    urls = database_urls()
    ensure_roles_and_database(urls.for_database("asep"))
    assert urls.admin is not None, "devhost tests need the embedded server (or an admin URL)"
    drop_database(urls.admin, name)
    create_database(urls.admin, name, owner="asep_owner", app="asep_app")
    return libpq_dsn(urls.owner.set(database=name))


@dataclass
class DevhostProcess:
    """One `python -m devhost` subprocess; stop() is graceful, kill() is kill -9."""

    app_dir: Path
    dsn: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devhost",
                "--app-dir",
                str(self.app_dir),
                "--port",
                str(self.port),
                "--database-url",
                self.dsn,
                "--log-level",
                "WARNING",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"devhost exited early:\n{self.log_path.read_text()[-4000:]}")
            try:
                if (
                    httpx.get(f"{self.base_url}/admin/devhost/functions", timeout=1).status_code
                    == 200
                ):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"devhost did not start:\n{self.log_path.read_text()[-4000:]}")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def client_binding(self) -> str:
        return httpx.get(f"{self.base_url}/admin/devhost/client-binding", timeout=5).text

    def run_client(self, action: Callable[[df.DurableOrchestrationClient], Awaitable[T]]) -> T:
        """Run `action` with the real DurableOrchestrationClient bound to this devhost."""
        binding = self.client_binding()

        async def main() -> T:
            try:
                return await action(df.DurableOrchestrationClient(binding))
            finally:
                # The SDK caches one aiohttp session per process; it must not outlive this loop.
                await http_utils._close_session()

        return asyncio.run(main())

    def status(self, instance_id: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.base_url}/runtime/webhooks/durabletask/instances/{instance_id}", timeout=10
        )
        assert response.status_code in (200, 202), response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_for(self, instance_id: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body = self.status(instance_id)
            if body["runtimeStatus"] in ("Completed", "Failed", "Terminated", "Canceled"):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{instance_id} still {body['runtimeStatus']}: {json.dumps(body)}"
                )
            time.sleep(0.05)

    def start_instance(self, name: str, payload: Any = None, instance_id: str | None = None) -> str:
        suffix = f"/{instance_id}" if instance_id else ""
        response = httpx.post(
            f"{self.base_url}/runtime/webhooks/durabletask/orchestrators/{name}{suffix}",
            json=payload,
            timeout=10,
        )
        assert response.status_code == 202, response.text
        return str(response.json()["id"])


@pytest.fixture(scope="session")
def devhost_dsn(worker_id: str) -> str:
    return fresh_database(f"devhost_test_{worker_id}")


@pytest.fixture(scope="session")
def outbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("devhost") / "outbox.jsonl"


@pytest.fixture(scope="session")
def devhost(
    devhost_dsn: str, outbox: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevhostProcess]:
    host = DevhostProcess(
        app_dir=CONFORMANCE_APP,
        dsn=devhost_dsn,
        log_path=tmp_path_factory.mktemp("devhost-log") / "devhost.log",
        env={"DEVHOST_TEST_OUTBOX": str(outbox), "DEVHOST_SERVICEBUS_MAX_DELIVERY_COUNT": "3"},
    )
    host.start()
    yield host
    host.stop()


def read_outbox(path: Path, kind: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row["payload"] for row in rows if row["kind"] == kind]

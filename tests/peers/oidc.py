"""Starts tests/peers/oidc_provider.mjs (oauth2-mock-server) and mints tokens through it."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")


class OidcProvider:
    def __init__(self, process: subprocess.Popen[str], url: str, issuer: str) -> None:
        self.process = process
        self.url = url.rstrip("/")
        self.issuer = issuer

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/jwks"

    def jwks(self) -> dict[str, Any]:
        document: dict[str, Any] = httpx.get(self.jwks_uri, timeout=5).json()
        return document

    def token(
        self,
        claims: dict[str, Any],
        *,
        header: dict[str, Any] | None = None,
        drop: list[str] | None = None,
        audience: str | None = None,
    ) -> str:
        form = {"grant_type": "client_credentials", "scope": "", "claims": json.dumps(claims)}
        if audience is not None:
            form["aud"] = audience
        if header:
            form["header"] = json.dumps(header)
        if drop:
            form["drop"] = ",".join(drop)
        response = httpx.post(f"{self.url}/token", data=form, timeout=5)
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def id_token(self, client_id: str, username: str, claims: dict[str, Any]) -> str:
        """A real ID token (password grant): what a confused client might send as a bearer."""
        form = {
            "grant_type": "password",
            "username": username,
            "client_id": client_id,
            "scope": "openid",
            "claims": json.dumps(claims),
        }
        response = httpx.post(f"{self.url}/token", data=form, timeout=5)
        response.raise_for_status()
        token: str = response.json()["id_token"]
        return token

    def rotate(self) -> str:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps({"cmd": "rotate"}) + "\n")
        self.process.stdin.flush()
        kid: str = json.loads(self.process.stdout.readline())["kid"]
        return kid


@contextmanager
def running_oidc_provider(issuer: str = "") -> Iterator[OidcProvider]:
    node = shutil.which("node")
    if node is None or not (REPO / "node_modules" / "oauth2-mock-server").exists():
        pytest.skip("node and node_modules/oauth2-mock-server are needed (make test installs them)")
    process = subprocess.Popen(
        [node, str(SCRIPT), issuer],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        # The provider listens on 127.0.0.1 but advertises "localhost", which may resolve to ::1.
        url = ready["url"].replace("//localhost:", "//127.0.0.1:")
        yield OidcProvider(process, url, ready["issuer"])
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

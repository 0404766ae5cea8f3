"""The app on devhost, one process per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.db.server import DatabaseUrls
from tests.devhost.conftest import DevhostProcess
from tests.e2e.harness import app_on_devhost


@pytest.fixture(scope="module")
def host(
    database: DatabaseUrls, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevhostProcess]:
    process = app_on_devhost(database, tmp_path_factory.mktemp("e2e") / "devhost.log")
    process.start(timeout=60)
    try:
        yield process
    finally:
        process.stop()

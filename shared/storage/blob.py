"""Blob storage port: Azure Blob (Azurite locally), a directory, and an in-memory fake.

Audit bundles are written once: `put` never overwrites, so a container with an immutability
(WORM) policy behaves the same as one without, and a retried export can tell "already there"
from "different content there".
"""

from __future__ import annotations

import contextlib
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

from shared.config import Environment, Settings, get_settings

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient


class BlobExists(Exception):
    """A blob with this name exists already; blobs here are write-once."""


class BlobMissing(Exception):
    pass


class BlobStore(Protocol):
    def put(self, name: str, data: bytes, *, content_type: str) -> None: ...

    def get(self, name: str) -> bytes: ...

    def list(self, prefix: str) -> list[str]: ...


def _check_name(name: str) -> str:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not name or name.endswith("/"):
        raise ValueError(f"invalid blob name {name!r}")
    return name


class InMemoryBlobStore:
    def __init__(self) -> None:
        self.blobs: dict[str, tuple[bytes, str]] = {}

    def put(self, name: str, data: bytes, *, content_type: str) -> None:
        if _check_name(name) in self.blobs:
            raise BlobExists(name)
        self.blobs[name] = (data, content_type)

    def get(self, name: str) -> bytes:
        try:
            return self.blobs[name][0]
        except KeyError:
            raise BlobMissing(name) from None

    def list(self, prefix: str) -> list[str]:
        return sorted(name for name in self.blobs if name.startswith(prefix))


class FilesystemBlobStore:
    """Blobs as files under `root` (local development, and reading a downloaded bundle)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, name: str) -> Path:
        return self.root / _check_name(name)

    def put(self, name: str, data: bytes, *, content_type: str) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("xb") as handle:
                handle.write(data)
        except FileExistsError:
            raise BlobExists(name) from None

    def get(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(name) from None

    def list(self, prefix: str) -> list[str]:
        if not self.root.exists():
            return []
        names = (path.relative_to(self.root).as_posix() for path in self.root.rglob("*"))
        return sorted(
            name for name in names if name.startswith(prefix) and (self.root / name).is_file()
        )


class AzureBlobStore:
    """One container through `azure-storage-blob` (Azure Storage, or Azurite locally)."""

    def __init__(self, container: ContainerClient) -> None:
        from azure.core.exceptions import ResourceExistsError

        self._container = container
        with contextlib.suppress(ResourceExistsError):
            container.create_container()

    @classmethod
    def from_settings(cls, settings: Settings) -> AzureBlobStore:
        from azure.storage.blob import BlobServiceClient

        if settings.blob_connection_string is not None:
            service = BlobServiceClient.from_connection_string(
                settings.blob_connection_string.get_secret_value()
            )
        elif settings.blob_account_url is not None:
            from azure.identity import DefaultAzureCredential

            service = BlobServiceClient(settings.blob_account_url, DefaultAzureCredential())
        else:
            raise ValueError("no blob account configured")
        return cls(service.get_container_client(settings.audit_container))

    def put(self, name: str, data: bytes, *, content_type: str) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import ContentSettings

        try:
            self._container.upload_blob(
                _check_name(name),
                data,
                overwrite=False,
                content_settings=ContentSettings(content_type=content_type),
            )
        except ResourceExistsError:
            raise BlobExists(name) from None

    def get(self, name: str) -> bytes:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self._container.download_blob(_check_name(name)).readall()
        except ResourceNotFoundError:
            raise BlobMissing(name) from None

    def list(self, prefix: str) -> list[str]:
        return sorted(self._container.list_blob_names(name_starts_with=prefix))


def blob_store(settings: Settings | None = None) -> BlobStore:
    """The store the settings choose: Azure Blob when configured, else a local directory."""
    settings = settings or get_settings()
    if settings.blob_connection_string is not None or settings.blob_account_url is not None:
        return AzureBlobStore.from_settings(settings)
    if settings.env is Environment.AZURE:
        raise RuntimeError("ASEP_ENV=azure requires ASEP_BLOB_ACCOUNT_URL for audit bundles")
    # Per database: the embedded server holds the dev database and every test database, and
    # their chains' bundles must not land on each other's (write-once) names.
    directory = settings.data_dir / "blobs" / settings.database_name / settings.audit_container
    return FilesystemBlobStore(directory)

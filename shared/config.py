"""The one settings object. Every setting is documented in README.md's configuration table."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Environment(StrEnum):
    LOCAL = "local"
    TEST = "test"
    AZURE = "azure"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASEP_", extra="ignore", frozen=True)

    env: Environment = Environment.LOCAL
    data_dir: Path = Field(default=REPO_ROOT / ".asep")

    # Owner URL: migrations run with it. Unset in local/test means the embedded PostgreSQL.
    database_url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    # App URL: the role the app connects as. Derived from database_url when unset.
    app_database_url: SecretStr | None = None
    database_name: str = "asep"
    owner_role: str = "asep_owner"
    app_role: str = "asep_app"
    app_role_password: SecretStr | None = None
    db_pool_size: int = 10
    db_statement_timeout_ms: int = 30_000

    host: str = "127.0.0.1"
    port: int = Field(default=7071, validation_alias="PORT")
    log_level: str = "INFO"
    max_body_bytes: int = 1_048_576
    # Imports stream into a spooled file; Azure Functions caps requests at 100 MB.
    max_import_bytes: int = 100 * 1_048_576
    demo_tenant_slug: str = "demo"

    # Audit checkpoints: Blob (connection string for Azurite/keys, or account URL with managed
    # identity); with neither, local/test write bundles under data_dir/blobs.
    blob_connection_string: SecretStr | None = None
    blob_account_url: str | None = None
    audit_container: str = "audit"
    # Signing: a Key Vault EC P-256 key URL in Azure, else a local key file.
    audit_key_vault_key_url: str | None = None
    audit_signing_key_path: Path | None = None
    # PEM file of pinned public keys; unset trusts the configured signer's own key.
    audit_trusted_keys_path: Path | None = None
    audit_verify_workers: int = Field(default=0, ge=0)

    @property
    def audit_signing_key_file(self) -> Path:
        return self.audit_signing_key_path or self.data_dir / "keys" / "audit-checkpoint.pem"

    # The deployment's platform operators (who provision tenants): "issuer|subject" entries,
    # trusted through the platform issuer below. In local/test the dev issuer's
    # operator is trusted when platform_issuer is unset.
    platform_operators: list[str] = Field(default_factory=list)
    platform_issuer: str | None = None
    platform_jwks_uri: str | None = None
    platform_audience: str = "api://asep"
    platform_provider: str = "entra"
    jwt_leeway_seconds: int = Field(default=90, ge=60, le=120)

    # Queues: Service Bus in Azure (managed identity); devhost's queues on one machine.
    servicebus_namespace: str | None = None
    devhost_origin: str = Field(default="http://127.0.0.1:7071", validation_alias="DEVHOST_ORIGIN")

    # Unsubscribe links: HMAC-SHA256 key (required in azure; local/test generate one under
    # data_dir/keys) and the public base URL the links point at.
    unsubscribe_secret: SecretStr | None = None
    public_base_url: str = "http://localhost:7071"
    # A paused campaign's journeys look again this often (and enrolment waits as long).
    pause_poll_seconds: int = Field(default=60, ge=1)
    approval_ttl_seconds: int = Field(default=72 * 3600, ge=60)
    # Meeting booking: links are HMAC-SHA256 signed (required in azure; local/test generate a
    # key under data_dir/keys); how long a proposal waits for the prospect's choice; how many
    # proposals one booking makes when chosen slots turn out taken.
    meeting_link_secret: SecretStr | None = None
    meeting_choice_timeout_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    meeting_max_proposals: int = Field(default=3, ge=1, le=10)

    # HubSpot (OAuth app): client id/secret from the app's Auth settings; the secret also signs
    # webhooks (signature v3). The redirect URI must match the app's configuration exactly.
    hubspot_client_id: str | None = None
    hubspot_client_secret: SecretStr | None = None
    hubspot_redirect_uri: str | None = None
    hubspot_auth_url: str = "https://app.hubspot.com/oauth/authorize"
    hubspot_api_base_url: str = "https://api.hubapi.com"
    # "free_starter" (100/10 s), "professional", "enterprise" (190/10 s), "oauth" (110/10 s).
    hubspot_rate_tier: Literal["free_starter", "professional", "enterprise", "oauth"] = "oauth"
    hubspot_oauth_state_ttl_seconds: int = Field(default=600, ge=60, le=3600)
    hubspot_webhook_max_age_seconds: int = Field(default=300, ge=1, le=300)
    # Per-tenant key-encryption keys for integration tokens: Key Vault later, key files now.
    secrets_key_dir: Path | None = None

    @property
    def tenant_kek_dir(self) -> Path:
        return self.secrets_key_dir or self.data_dir / "keys" / "tenants"

    @property
    def unsubscribe_secret_file(self) -> Path:
        return self.data_dir / "keys" / "unsubscribe.key"

    @property
    def meeting_link_secret_file(self) -> Path:
        return self.data_dir / "keys" / "meeting_links.key"

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def embedded_pgdata(self) -> Path:
        return self.data_dir / "pg"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    settings = Settings()
    if settings.env is Environment.AZURE and settings.uses_embedded_database:
        raise RuntimeError(
            "ASEP_ENV=azure requires DATABASE_URL: the embedded database is for local/test"
        )
    if settings.env is Environment.AZURE and settings.unsubscribe_secret is None:
        raise RuntimeError(
            "ASEP_ENV=azure requires ASEP_UNSUBSCRIBE_SECRET: unsubscribe links must verify "
            "on every instance"
        )
    return settings

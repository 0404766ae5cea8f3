"""Apply migrations as the owner role."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(owner_url: URL) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["owner_url"] = owner_url
    return config


def upgrade_to_head(owner_url: URL) -> None:
    # "heads": capabilities developed side by side may branch; a merge revision joins them.
    command.upgrade(alembic_config(owner_url), "heads")


def current_heads(owner_url: URL) -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config(owner_url)).get_heads())

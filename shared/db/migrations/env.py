"""Alembic environment: runs as the owner role, with the URL handed in by shared.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from shared.db.registry import metadata

url = context.config.attributes["owner_url"]
connectable = create_engine(url)

with connectable.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
connectable.dispose()

"""Imports every ORM module so `Base.metadata` knows every table (Alembic, tests)."""

from shared.audit import orm as audit_orm
from shared.campaigns import orm as campaigns_orm
from shared.db import directory
from shared.db.base import Base
from shared.identity import orm as identity_orm
from shared.prospects import orm as prospects_orm

ORM_MODULES = (audit_orm, identity_orm, prospects_orm, campaigns_orm, directory)

metadata = Base.metadata

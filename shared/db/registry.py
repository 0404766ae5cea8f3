"""Imports every ORM module so `Base.metadata` knows every table (Alembic, tests)."""

from shared.approvals import orm as approvals_orm
from shared.audit import orm as audit_orm
from shared.campaigns import orm as campaigns_orm
from shared.db import directory
from shared.db.base import Base
from shared.deliverability import orm as deliverability_orm
from shared.identity import orm as identity_orm
from shared.prospects import orm as prospects_orm

ORM_MODULES = (
    audit_orm,
    identity_orm,
    prospects_orm,
    campaigns_orm,
    directory,
    deliverability_orm,
    approvals_orm,
)

metadata = Base.metadata

"""Imports every ORM module so `Base.metadata` knows every table (Alembic, tests)."""

from shared.approvals import orm as approvals_orm
from shared.audit import orm as audit_orm
from shared.calendar import orm as calendar_orm
from shared.campaigns import orm as campaigns_orm
from shared.crm import integration_orm as crm_integration_orm
from shared.crm import orm as crm_orm
from shared.db import directory
from shared.db.base import Base
from shared.deals import orm as deals_orm
from shared.deliverability import orm as deliverability_orm
from shared.drafting import orm as drafting_orm
from shared.execution import orm as execution_orm
from shared.identity import orm as identity_orm
from shared.llm import orm as llm_orm
from shared.mail import orm as mail_orm
from shared.meetings import orm as meetings_orm
from shared.policy import orm as policy_orm
from shared.prospects import orm as prospects_orm
from shared.replies import orm as replies_orm
from shared.research import orm as research_orm

ORM_MODULES = (
    audit_orm,
    identity_orm,
    prospects_orm,
    campaigns_orm,
    directory,
    deliverability_orm,
    approvals_orm,
    mail_orm,
    calendar_orm,
    policy_orm,
    research_orm,
    drafting_orm,
    llm_orm,
    crm_orm,
    crm_integration_orm,
    replies_orm,
    execution_orm,
    deals_orm,
    meetings_orm,
)

metadata = Base.metadata

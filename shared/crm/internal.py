"""The internal CRM provider: every CRM write recorded in ASEP's own tables.

It is the default (no CRM connected) and what an external CRM's writes mirror. Writes run
in the caller's unit of work and are idempotent: the same idempotency key returns what the
first call created; companies and contacts are unique by domain and address.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert

from shared.crm.orm import CrmAssociation, CrmObject
from shared.crm.port import (
    CompanyUpsert,
    ContactUpsert,
    CrmRejected,
    CrmWrite,
    DealCreate,
    EmailLog,
    EngagementLog,
    ExternalRef,
    MeetingLog,
    OAuthStart,
    SuppressRequest,
    TaskCreate,
)
from shared.db.unit_of_work import TenantUnitOfWork

OPEN_DEAL_STAGES_EXCLUDED = ("closedwon", "closedlost", "DISQUALIFIED")


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


class InternalCrm:
    provider = "internal"

    def __init__(self, uow: TenantUnitOfWork, origin: str = "asep") -> None:
        self._uow = uow
        self._origin = origin
        self._writes: list[CrmWrite] = []

    # -- connection: nothing to connect --------------------------------------------------

    def connect(self) -> OAuthStart | None:
        return None

    def exchange_code_for_token(self, code: str, state: str) -> None:
        raise CrmRejected("the internal CRM has no OAuth connection")

    def refresh_token_if_needed(self) -> None:
        return None

    def writes(self) -> list[CrmWrite]:
        drained, self._writes = self._writes, []
        return drained

    # -- records ---------------------------------------------------------------------------

    def _upsert_keyed(
        self, object_type: str, natural_key: str, data: dict[str, Any], idempotency_key: str
    ) -> ExternalRef:
        statement = (
            insert(CrmObject)
            .values(
                id=uuid.uuid4(),
                tenant_id=self._uow.tenant_id,
                object_type=object_type,
                natural_key=natural_key,
                idempotency_key=idempotency_key,
                origin=self._origin,
                data=_json(data),
            )
            .on_conflict_do_update(
                index_elements=[CrmObject.tenant_id, CrmObject.object_type, CrmObject.natural_key],
                index_where=text("natural_key IS NOT NULL"),
                set_={"data": CrmObject.data.op("||")(insert(CrmObject).excluded.data)},
            )
            .returning(CrmObject.id, text("(xmax = 0) AS created"))
        )
        row = self._uow.execute(statement).one()
        ref = ExternalRef(str(row[0]), created=bool(row[1]))
        self._record("upsert", object_type, ref, idempotency_key, {"key": natural_key})
        return ref

    def _create_once(
        self, object_type: str, data: dict[str, Any], idempotency_key: str
    ) -> ExternalRef:
        statement = (
            insert(CrmObject)
            .values(
                id=uuid.uuid4(),
                tenant_id=self._uow.tenant_id,
                object_type=object_type,
                idempotency_key=idempotency_key,
                origin=self._origin,
                data=_json(data),
            )
            .on_conflict_do_nothing(index_elements=[CrmObject.tenant_id, CrmObject.idempotency_key])
            .returning(CrmObject.id)
        )
        created_id = self._uow.execute(statement).scalar_one_or_none()
        if created_id is not None:
            ref = ExternalRef(str(created_id), created=True)
            self._record("create", object_type, ref, idempotency_key)
            return ref
        existing = self._uow.session.scalar(
            select(CrmObject.id).where(
                CrmObject.tenant_id == self._uow.tenant_id,
                CrmObject.idempotency_key == idempotency_key,
            )
        )
        assert existing is not None
        return ExternalRef(str(existing), created=False)

    def _associate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        self._uow.execute(
            insert(CrmAssociation)
            .values(
                id=uuid.uuid4(),
                tenant_id=self._uow.tenant_id,
                from_type=from_type,
                from_id=uuid.UUID(from_id),
                to_type=to_type,
                to_id=uuid.UUID(to_id),
            )
            .on_conflict_do_nothing(
                index_elements=[
                    CrmAssociation.tenant_id,
                    CrmAssociation.from_id,
                    CrmAssociation.to_id,
                ]
            )
        )

    def _object(self, external_id: str, object_type: str) -> CrmObject:
        try:
            object_id = uuid.UUID(external_id)
        except ValueError as exc:
            raise CrmRejected(f"{external_id!r} is not an internal CRM id") from exc
        found = self._uow.get(CrmObject, object_id)
        if found is None or found.object_type != object_type:
            raise CrmRejected(f"no {object_type} {external_id}")
        return found

    def _record(
        self,
        operation: str,
        object_type: str,
        ref: ExternalRef,
        idempotency_key: str,
        details: dict[str, str] | None = None,
    ) -> None:
        self._writes.append(
            CrmWrite(operation, object_type, ref.external_id, idempotency_key, details or {})
        )

    def upsert_company(self, company: CompanyUpsert, *, idempotency_key: str) -> ExternalRef:
        data = {"domain": company.domain, "name": company.name, "website": company.website}
        return self._upsert_keyed("company", company.domain.lower(), data, idempotency_key)

    def upsert_contact(self, contact: ContactUpsert, *, idempotency_key: str) -> ExternalRef:
        data = {
            "email": contact.email,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "title": contact.title,
            "company_domain": contact.company_domain,
        }
        ref = self._upsert_keyed("contact", contact.email.lower(), data, idempotency_key)
        if contact.company_domain:
            company = self.upsert_company(
                CompanyUpsert(domain=contact.company_domain),
                idempotency_key=f"{idempotency_key}:company",
            )
            self._associate("contact", ref.external_id, "company", company.external_id)
        return ref

    def log_email(self, email: EmailLog, *, idempotency_key: str) -> ExternalRef:
        self._object(email.contact_external_id, "contact")
        ref = self._create_once(
            "email",
            {
                "subject": email.subject,
                "body": email.body,
                "direction": email.direction.value,
                "sent_at": email.sent_at.isoformat(),
                "message_id": email.message_id,
            },
            idempotency_key,
        )
        self._associate("email", ref.external_id, "contact", email.contact_external_id)
        return ref

    def log_meeting(self, meeting: MeetingLog, *, idempotency_key: str) -> ExternalRef:
        self._object(meeting.contact_external_id, "contact")
        ref = self._create_once(
            "meeting",
            {
                "title": meeting.title,
                "start_at": meeting.start_at.isoformat(),
                "end_at": meeting.end_at.isoformat(),
                "attendees": list(meeting.attendees),
            },
            idempotency_key,
        )
        self._associate("meeting", ref.external_id, "contact", meeting.contact_external_id)
        if meeting.deal_external_id:
            self._associate("meeting", ref.external_id, "deal", meeting.deal_external_id)
        return ref

    def create_task(self, task: TaskCreate, *, idempotency_key: str) -> ExternalRef:
        self._object(task.contact_external_id, "contact")
        ref = self._create_once(
            "task",
            {"title": task.title, "due_at": task.due_at.isoformat(), "note": task.note},
            idempotency_key,
        )
        self._associate("task", ref.external_id, "contact", task.contact_external_id)
        return ref

    def set_lifecycle(self, contact_external_id: str, stage: str, *, idempotency_key: str) -> None:
        contact = self._object(contact_external_id, "contact")
        contact.data = {**contact.data, "lifecycle_stage": stage}
        self._uow.flush()
        self._record(
            "set_lifecycle",
            "contact",
            ExternalRef(contact_external_id),
            idempotency_key,
            {"stage": stage},
        )

    def suppress(self, request: SuppressRequest, *, idempotency_key: str) -> None:
        self._upsert_keyed(
            "suppression",
            request.email.lower(),
            {"email": request.email, "reason": request.reason},
            idempotency_key,
        )

    def find_deal_for_contact_or_company(
        self, *, contact_external_id: str | None, company_external_id: str | None
    ) -> ExternalRef | None:
        targets = [uuid.UUID(i) for i in (contact_external_id, company_external_id) if i]
        if not targets:
            return None
        deal_id = self._uow.session.scalar(
            select(CrmObject.id)
            .join(
                CrmAssociation,
                (CrmAssociation.from_id == CrmObject.id)
                & (CrmAssociation.tenant_id == CrmObject.tenant_id),
            )
            .where(
                CrmObject.tenant_id == self._uow.tenant_id,
                CrmObject.object_type == "deal",
                CrmAssociation.to_id.in_(targets),
                CrmObject.data["stage_id"].astext.not_in(OPEN_DEAL_STAGES_EXCLUDED),
            )
            .order_by(CrmObject.created_at.desc())
            .limit(1)
        )
        return ExternalRef(str(deal_id)) if deal_id else None

    def create_deal(self, deal: DealCreate, *, idempotency_key: str) -> ExternalRef:
        return self._create_once(
            "deal",
            {
                "name": deal.name,
                "source": deal.source,
                "amount": deal.amount,
                "pipeline_id": deal.pipeline_id,
                "stage_id": deal.stage_id or "",
                "close_date": deal.close_date,
                "owner_id": deal.owner_id,
            },
            idempotency_key,
        )

    def update_deal_stage(
        self, deal_external_id: str, stage_id: str, *, idempotency_key: str
    ) -> None:
        deal = self._object(deal_external_id, "deal")
        deal.data = {**deal.data, "stage_id": stage_id}
        self._uow.flush()
        self._record(
            "update_stage",
            "deal",
            ExternalRef(deal_external_id),
            idempotency_key,
            {"stage_id": stage_id},
        )

    def associate_deal_to_contact(
        self, deal_external_id: str, contact_external_id: str, *, idempotency_key: str
    ) -> None:
        self._object(deal_external_id, "deal")
        self._object(contact_external_id, "contact")
        self._associate("deal", deal_external_id, "contact", contact_external_id)

    def associate_deal_to_company(
        self, deal_external_id: str, company_external_id: str, *, idempotency_key: str
    ) -> None:
        self._object(deal_external_id, "deal")
        self._object(company_external_id, "company")
        self._associate("deal", deal_external_id, "company", company_external_id)

    def log_engagement(self, engagement: EngagementLog, *, idempotency_key: str) -> ExternalRef:
        self._object(engagement.contact_external_id, "contact")
        object_type = engagement.type.value.lower()
        ref = self._create_once(
            object_type,
            {
                "subject": engagement.subject,
                "body": engagement.body,
                "occurred_at": engagement.occurred_at.isoformat(),
            },
            idempotency_key,
        )
        self._associate(object_type, ref.external_id, "contact", engagement.contact_external_id)
        if engagement.deal_external_id:
            self._associate(object_type, ref.external_id, "deal", engagement.deal_external_id)
        return ref

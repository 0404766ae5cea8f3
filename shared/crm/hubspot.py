"""The HubSpot CRM provider.

ASEP's own records stay the system of record: every port call writes them first (through
the internal provider) and returns their ids, then queues the matching HubSpot write in
`crm_pending_writes` in the same transaction. `push_pending` sends queued writes to HubSpot
as its own step, between two committed states (ARCHITECTURE.md §6):

1. claim a batch of pending rows (commit);
2. before each create batch, count the attempt (commit), then call HubSpot;
3. record HubSpot ids in `crm_mappings`, mark rows done/rejected/held, audit (commit).

A crash after step 2's HubSpot call leaves rows pending with an attempt counted; the next
run first reads HubSpot by our unique idempotency-marker property and maps what it finds,
so nothing is created twice. Contacts are upserted by email (HubSpot's own unique key) and
companies are matched by domain before anything is created. Associations and updates are
idempotent at HubSpot. Disconnected or revoked: writes are held `not_connected` and
released on reconnect. A deal whose intent has no stage mapping is held with that reason.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import case, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from shared.audit.schemas import Actor, ActorType
from shared.crm.hubspot_api import (
    MARKER_PROPERTY,
    Association,
    CrmAmbiguous,
    CrmAuthExpired,
    CrmConflict,
    HubSpotApi,
)
from shared.crm.integration_orm import CrmMapping, CrmPendingWrite, CrmStageMapping
from shared.crm.integrations import (
    NOT_CONNECTED,
    PROVIDER,
    HubSpotEnvironment,
    access_token,
    complete_connect,
    force_refresh,
    get_integration,
    mark_disconnected,
    start_connect,
    tenant_of_state,
)
from shared.crm.internal import InternalCrm
from shared.crm.port import (
    CompanyUpsert,
    ContactUpsert,
    CrmRejected,
    CrmUnavailable,
    CrmWrite,
    DealCreate,
    DealStageIntent,
    EmailDirection,
    EmailLog,
    EngagementLog,
    EngagementType,
    ExternalRef,
    MeetingLog,
    OAuthStart,
    SuppressRequest,
    TaskCreate,
)
from shared.crm.service import audit_crm_writes
from shared.db.directory import DirectoryRoute, RouteKind
from shared.db.unit_of_work import TenantUnitOfWork, directory_unit_of_work, tenant_unit_of_work

HUBSPOT_TYPES = {
    "company": "companies",
    "contact": "contacts",
    "deal": "deals",
    "email": "emails",
    "note": "notes",
    "task": "tasks",
    "meeting": "meetings",
}
# HubSpot-defined association type ids (v4), from -> to. 1 and 5 carry the "Primary" label.
ASSOCIATION_TYPES: dict[tuple[str, str], int] = {
    ("contact", "company"): 1,
    ("deal", "contact"): 3,
    ("deal", "company"): 5,
    ("email", "contact"): 198,
    ("email", "deal"): 210,
    ("note", "contact"): 202,
    ("note", "deal"): 214,
    ("task", "contact"): 204,
    ("task", "deal"): 216,
    ("meeting", "contact"): 200,
    ("meeting", "deal"): 212,
}
ENGAGEMENT_TYPES = ("email", "note", "task", "meeting")
ADAPTER_ACTOR = Actor(type=ActorType.SYSTEM, id="crm-sync", display="CRM sync")


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _clean(properties: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in properties.items() if v is not None and v != ""}


class HubSpotCrm:
    """The port over ASEP's records plus the HubSpot outbox; see the module docstring."""

    provider = PROVIDER

    def __init__(
        self, uow: TenantUnitOfWork, env: HubSpotEnvironment | None = None, origin: str = "asep"
    ) -> None:
        self._uow = uow
        self._env = env
        self._origin = origin
        self._internal = InternalCrm(uow, origin)

    @property
    def env(self) -> HubSpotEnvironment:
        if self._env is None:
            self._env = HubSpotEnvironment.default()
        return self._env

    # -- connection ------------------------------------------------------------------------

    def connect(self) -> OAuthStart | None:
        started = start_connect(self._uow, self.env, created_by=self._origin)
        state = parse_qs(urlsplit(started.authorize_url).query)["state"][0]
        return OAuthStart(authorize_url=started.authorize_url, state=state)

    def exchange_code_for_token(self, code: str, state: str) -> None:
        if tenant_of_state(state) != self._uow.tenant_id:
            raise CrmRejected("this connection request belongs to another tenant")
        result = complete_connect(self._uow, self.env, code, state, ADAPTER_ACTOR)
        if not result.connected:
            raise CrmRejected(result.error or "HubSpot did not connect")

    def refresh_token_if_needed(self) -> None:
        access_token(self._uow, self.env)

    def writes(self) -> list[CrmWrite]:
        return [
            CrmWrite(
                w.operation,
                w.object_type,
                w.external_id,
                w.idempotency_key,
                {**w.details, "hubspot": "queued"},
            )
            for w in self._internal.writes()
        ]

    # -- the outbox ------------------------------------------------------------------------

    def _queue(
        self,
        operation: str,
        object_type: str,
        internal_id: str | None,
        idempotency_key: str,
        payload: dict[str, Any],
    ) -> None:
        self._uow.execute(
            insert(CrmPendingWrite)
            .values(
                id=uuid.uuid4(),
                tenant_id=self._uow.tenant_id,
                provider=PROVIDER,
                operation=operation,
                object_type=object_type,
                internal_id=uuid.UUID(internal_id) if internal_id else None,
                idempotency_key=idempotency_key,
                payload=payload,
                status="pending",
                attempts=0,
                origin=self._origin,
            )
            .on_conflict_do_nothing(
                index_elements=[
                    CrmPendingWrite.tenant_id,
                    CrmPendingWrite.provider,
                    CrmPendingWrite.idempotency_key,
                ]
            )
        )

    def _associate(
        self, from_type: str, from_id: str, to_type: str, to_id: str, idempotency_key: str
    ) -> None:
        self._queue(
            "associate",
            from_type,
            from_id,
            idempotency_key,
            {"to_type": to_type, "to_id": to_id},
        )

    # -- records ---------------------------------------------------------------------------

    def upsert_company(self, company: CompanyUpsert, *, idempotency_key: str) -> ExternalRef:
        ref = self._internal.upsert_company(company, idempotency_key=idempotency_key)
        self._queue(
            "upsert",
            "company",
            ref.external_id,
            idempotency_key,
            {
                "domain": company.domain.lower(),
                "properties": _clean(
                    {
                        "domain": company.domain.lower(),
                        "name": company.name,
                        "website": company.website,
                    }
                ),
            },
        )
        return ref

    def upsert_contact(self, contact: ContactUpsert, *, idempotency_key: str) -> ExternalRef:
        ref = self._internal.upsert_contact(contact, idempotency_key=idempotency_key)
        email = contact.email.lower()
        self._queue(
            "upsert",
            "contact",
            ref.external_id,
            idempotency_key,
            {
                "email": email,
                "properties": _clean(
                    {
                        "email": email,
                        "firstname": contact.first_name,
                        "lastname": contact.last_name,
                        "jobtitle": contact.title,
                    }
                ),
            },
        )
        if contact.company_domain:
            company = self.upsert_company(
                CompanyUpsert(domain=contact.company_domain),
                idempotency_key=f"{idempotency_key}:company",
            )
            self._associate(
                "contact",
                ref.external_id,
                "company",
                company.external_id,
                f"{idempotency_key}:contact-company",
            )
        return ref

    def _create(
        self,
        object_type: str,
        ref: ExternalRef,
        idempotency_key: str,
        properties: dict[str, Any],
        links: Sequence[tuple[str, str]],
        extra: dict[str, Any] | None = None,
    ) -> ExternalRef:
        self._queue(
            "create",
            object_type,
            ref.external_id,
            idempotency_key,
            {
                "properties": _clean(properties),
                "associations": [{"to_type": t, "to_id": i} for t, i in links],
                **(extra or {}),
            },
        )
        return ref

    def log_email(self, email: EmailLog, *, idempotency_key: str) -> ExternalRef:
        ref = self._internal.log_email(email, idempotency_key=idempotency_key)
        direction = "EMAIL" if email.direction is EmailDirection.OUTBOUND else "INCOMING_EMAIL"
        return self._create(
            "email",
            ref,
            idempotency_key,
            {
                "hs_timestamp": _iso(email.sent_at),
                "hs_email_subject": email.subject,
                "hs_email_text": email.body,
                "hs_email_direction": direction,
                "hs_email_status": "SENT",
            },
            [("contact", email.contact_external_id)],
        )

    def log_meeting(self, meeting: MeetingLog, *, idempotency_key: str) -> ExternalRef:
        ref = self._internal.log_meeting(meeting, idempotency_key=idempotency_key)
        links = [("contact", meeting.contact_external_id)]
        if meeting.deal_external_id:
            links.append(("deal", meeting.deal_external_id))
        return self._create(
            "meeting",
            ref,
            idempotency_key,
            {
                "hs_timestamp": _iso(meeting.start_at),
                "hs_meeting_title": meeting.title,
                "hs_meeting_start_time": _iso(meeting.start_at),
                "hs_meeting_end_time": _iso(meeting.end_at),
                "hs_meeting_body": ", ".join(meeting.attendees) or None,
                "hs_meeting_outcome": "SCHEDULED",
            },
            links,
        )

    def create_task(self, task: TaskCreate, *, idempotency_key: str) -> ExternalRef:
        ref = self._internal.create_task(task, idempotency_key=idempotency_key)
        return self._create(
            "task",
            ref,
            idempotency_key,
            {
                "hs_timestamp": _iso(task.due_at),
                "hs_task_subject": task.title,
                "hs_task_body": task.note or None,
                "hs_task_status": "NOT_STARTED",
            },
            [("contact", task.contact_external_id)],
        )

    def log_engagement(self, engagement: EngagementLog, *, idempotency_key: str) -> ExternalRef:
        ref = self._internal.log_engagement(engagement, idempotency_key=idempotency_key)
        links = [("contact", engagement.contact_external_id)]
        if engagement.deal_external_id:
            links.append(("deal", engagement.deal_external_id))
        if engagement.type is EngagementType.NOTE:
            body = (
                f"{engagement.subject}\n\n{engagement.body}"
                if engagement.subject
                else engagement.body
            )
            properties: dict[str, Any] = {
                "hs_timestamp": _iso(engagement.occurred_at),
                "hs_note_body": body,
            }
        else:
            properties = {
                "hs_timestamp": _iso(engagement.occurred_at),
                "hs_email_subject": engagement.subject,
                "hs_email_text": engagement.body,
                "hs_email_direction": "EMAIL",
                "hs_email_status": "SENT",
            }
        return self._create(engagement.type.value.lower(), ref, idempotency_key, properties, links)

    def set_lifecycle(self, contact_external_id: str, stage: str, *, idempotency_key: str) -> None:
        self._internal.set_lifecycle(contact_external_id, stage, idempotency_key=idempotency_key)
        self._queue(
            "update",
            "contact",
            contact_external_id,
            idempotency_key,
            {"properties": {"lifecyclestage": stage}},
        )

    def suppress(self, request: SuppressRequest, *, idempotency_key: str) -> None:
        # ASEP's suppression list is authoritative. HubSpot's opt-out lives in its
        # subscription API, which needs marketing scopes we deliberately do not request.
        self._internal.suppress(request, idempotency_key=idempotency_key)

    def find_deal_for_contact_or_company(
        self, *, contact_external_id: str | None, company_external_id: str | None
    ) -> ExternalRef | None:
        # ASEP's records (kept current by HubSpot's deal webhooks) answer without a
        # search request against HubSpot's 5 requests/s search limit.
        return self._internal.find_deal_for_contact_or_company(
            contact_external_id=contact_external_id, company_external_id=company_external_id
        )

    def create_deal(self, deal: DealCreate, *, idempotency_key: str) -> ExternalRef:
        ref = self._internal.create_deal(deal, idempotency_key=idempotency_key)
        return self._create(
            "deal",
            ref,
            idempotency_key,
            {
                "dealname": deal.name,
                "amount": deal.amount,
                "closedate": deal.close_date.isoformat() if deal.close_date else None,
                "pipeline": deal.pipeline_id,
                "dealstage": deal.stage_id,
                "hubspot_owner_id": deal.owner_id,
            },
            [],
            {"intent": deal.intent.value if deal.intent and not deal.stage_id else None},
        )

    def update_deal_stage(
        self, deal_external_id: str, stage_id: str, *, idempotency_key: str
    ) -> None:
        self._internal.update_deal_stage(
            deal_external_id, stage_id, idempotency_key=idempotency_key
        )
        intents = {i.value for i in DealStageIntent}
        payload: dict[str, Any] = (
            {"properties": {}, "intent": stage_id}
            if stage_id in intents
            else {"properties": {"dealstage": stage_id}}
        )
        self._queue("update", "deal", deal_external_id, idempotency_key, payload)

    def associate_deal_to_contact(
        self, deal_external_id: str, contact_external_id: str, *, idempotency_key: str
    ) -> None:
        self._internal.associate_deal_to_contact(
            deal_external_id, contact_external_id, idempotency_key=idempotency_key
        )
        self._associate("deal", deal_external_id, "contact", contact_external_id, idempotency_key)

    def associate_deal_to_company(
        self, deal_external_id: str, company_external_id: str, *, idempotency_key: str
    ) -> None:
        self._internal.associate_deal_to_company(
            deal_external_id, company_external_id, idempotency_key=idempotency_key
        )
        self._associate("deal", deal_external_id, "company", company_external_id, idempotency_key)


# -- pushing to HubSpot ------------------------------------------------------------------------


@dataclass
class Row:
    id: uuid.UUID
    operation: str
    object_type: str
    internal_id: str | None
    key: str
    payload: dict[str, Any]
    attempts: int
    origin: str


@dataclass
class PushReport:
    claimed: int = 0
    done: int = 0
    rejected: int = 0
    held: int = 0
    left_pending: int = 0
    requests: int = 0
    throttled: int = 0
    reconciled: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class _Outcome:
    done: dict[uuid.UUID, str | None] = field(default_factory=dict)
    rejected: dict[uuid.UUID, str] = field(default_factory=dict)
    held: dict[uuid.UUID, str] = field(default_factory=dict)
    waiting: dict[uuid.UUID, str] = field(default_factory=dict)
    mappings: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    writes: list[CrmWrite] = field(default_factory=list)


class _Writes:
    """Adapts a push's writes to `audit_crm_writes`."""

    provider = PROVIDER

    def __init__(self, writes: list[CrmWrite]) -> None:
        self._writes = writes

    def writes(self) -> list[CrmWrite]:
        drained, self._writes = self._writes, []
        return drained


UowFactory = Callable[[uuid.UUID], AbstractContextManager[TenantUnitOfWork]]


class HubSpotPusher:
    """Sends one tenant's pending writes to HubSpot in batches of up to 100."""

    def __init__(
        self,
        tenant_id: uuid.UUID,
        env: HubSpotEnvironment | None = None,
        *,
        uow_factory: UowFactory = tenant_unit_of_work,
        lease: timedelta = timedelta(minutes=2),
        batch_rows: int = 2000,
    ) -> None:
        self.tenant_id = tenant_id
        self.env = env or HubSpotEnvironment.default()
        self._uow = uow_factory
        self._lease = lease
        self._batch_rows = batch_rows
        # Test seam: runs after HubSpot answered and before the results commit.
        self.before_record: Callable[[], None] = lambda: None

    # -- step 1: claim ---------------------------------------------------------------------

    def _claim(
        self,
    ) -> tuple[list[Row], dict[tuple[str, str], str], dict[str, tuple[str, str]], str | None]:
        now = datetime.now(UTC)
        with self._uow(self.tenant_id) as uow:
            integration = get_integration(uow)
            if integration is None or integration.status != "connected":
                self._hold_all(uow, f"{NOT_CONNECTED}: HubSpot is not connected")
                return [], {}, {}, None
            try:
                token = access_token(uow, self.env)
            except CrmUnavailable as exc:
                self._hold_all(uow, f"{NOT_CONNECTED}: {exc}")
                return [], {}, {}, None
            found = uow.session.scalars(
                uow.scoped(CrmPendingWrite)
                .where(
                    CrmPendingWrite.provider == PROVIDER,
                    CrmPendingWrite.status == "pending",
                    or_(
                        CrmPendingWrite.claimed_at.is_(None),
                        CrmPendingWrite.claimed_at < now - self._lease,
                    ),
                )
                .order_by(CrmPendingWrite.seq)
                .limit(self._batch_rows)
                .with_for_update(skip_locked=True)
            ).all()
            rows = []
            for r in found:
                r.claimed_at = now
                rows.append(
                    Row(
                        r.id,
                        r.operation,
                        r.object_type,
                        str(r.internal_id) if r.internal_id else None,
                        r.idempotency_key,
                        dict(r.payload),
                        r.attempts,
                        r.origin,
                    )
                )
            referenced = {uuid.UUID(i) for row in rows for i in _references(row)}
            mapped = (
                {
                    (m.internal_type, str(m.internal_id)): m.external_id
                    for m in uow.session.scalars(
                        uow.scoped(CrmMapping).where(
                            CrmMapping.provider == PROVIDER, CrmMapping.internal_id.in_(referenced)
                        )
                    )
                }
                if referenced
                else {}
            )
            stages = {
                m.intent: (m.pipeline_id, m.stage_id)
                for m in uow.session.scalars(
                    uow.scoped(CrmStageMapping).where(CrmStageMapping.provider == PROVIDER)
                )
            }
            uow.flush()
            return rows, mapped, stages, token

    def _hold_all(self, uow: TenantUnitOfWork, reason: str) -> None:
        uow.execute(
            update(CrmPendingWrite)
            .where(
                CrmPendingWrite.tenant_id == uow.tenant_id,
                CrmPendingWrite.provider == PROVIDER,
                CrmPendingWrite.status == "pending",
            )
            .values(status="held", reason=reason[:1000], claimed_at=None)
        )

    def _count_attempt(self, rows: Sequence[Row]) -> None:
        with self._uow(self.tenant_id) as uow:
            uow.execute(
                update(CrmPendingWrite)
                .where(
                    CrmPendingWrite.tenant_id == uow.tenant_id,
                    CrmPendingWrite.id.in_([r.id for r in rows]),
                )
                .values(attempts=CrmPendingWrite.attempts + 1)
            )
        for row in rows:
            row.attempts += 1

    # -- the run ---------------------------------------------------------------------------

    def push(self, *, max_rounds: int = 50) -> PushReport:
        """Push until nothing claimable is left (or `max_rounds` batches of rows)."""
        report = PushReport()
        for _ in range(max_rounds):
            rows, mapped, stages, token = self._claim()
            if not rows or token is None:
                break
            report.claimed += len(rows)
            api = self.env.api_factory(self.tenant_id, token)
            outcome = _Outcome()
            auth_failed = False
            try:
                self._run(api, rows, mapped, stages, outcome, report)
            except CrmAuthExpired as exc:
                report.errors.append(str(exc))
                auth_failed = True
            finally:
                report.requests += api.requests
                report.throttled += api.throttled
            self.before_record()
            self._record(rows, outcome, report)
            if auth_failed:
                # Refreshed: the next round retries. Refused: the account is marked revoked
                # and the next claim holds every pending write until a reconnect.
                self._auth_failed(report.errors[-1])
                continue
            if report.left_pending and not outcome.done:
                break
        return report

    def _auth_failed(self, message: str) -> None:
        with self._uow(self.tenant_id) as uow:
            try:
                force_refresh(uow, self.env)
            except CrmUnavailable:
                mark_disconnected(uow, "revoked", message)

    def _run(
        self,
        api: HubSpotApi,
        rows: list[Row],
        mapped: dict[tuple[str, str], str],
        stages: dict[str, tuple[str, str]],
        out: _Outcome,
        report: PushReport,
    ) -> None:
        by_kind: dict[tuple[str, str], list[Row]] = defaultdict(list)
        for row in rows:
            by_kind[(row.operation, row.object_type)].append(row)

        def ext(internal_type: str, internal_id: str) -> str | None:
            return mapped.get((internal_type, internal_id))

        def done(row: Row, external_id: str | None, operation: str) -> None:
            out.done[row.id] = external_id
            if external_id and row.internal_id and row.operation in ("upsert", "create"):
                mapped[(row.object_type, row.internal_id)] = external_id
                out.mappings[(row.object_type, row.internal_id)] = (external_id, row.key)
            out.writes.append(
                CrmWrite(
                    operation,
                    row.object_type,
                    external_id or (row.internal_id or ""),
                    row.key,
                    {"origin": row.origin, "internal_id": row.internal_id or ""},
                )
            )

        def guarded(phase_rows: Sequence[Row], action: Callable[[], None]) -> None:
            try:
                action()
            except CrmAuthExpired:
                raise
            except CrmRejected as exc:
                for row in phase_rows:
                    if row.id not in out.done:
                        out.rejected[row.id] = str(exc)
            except CrmUnavailable as exc:
                report.errors.append(str(exc))
                for row in phase_rows:
                    if row.id not in out.done:
                        out.waiting[row.id] = str(exc)

        # Companies: an existing HubSpot company with the domain is used, never duplicated.
        companies = [
            r for r in by_kind[("upsert", "company")] if not ext("company", r.internal_id or "")
        ]
        for r in by_kind[("upsert", "company")]:
            if ext("company", r.internal_id or ""):
                done(r, ext("company", r.internal_id or ""), "hubspot.matched")
        if companies:
            guarded(companies, lambda: self._companies(api, companies, done, out, report))
        # Contacts: HubSpot's upsert by email is idempotent by itself.
        contacts = by_kind[("upsert", "contact")]
        if contacts:

            def upsert_contacts() -> None:
                latest: dict[str, Row] = {}
                for r in contacts:
                    latest[r.payload["email"]] = r
                results = api.batch_upsert(
                    "contacts",
                    "email",
                    [(email, r.payload["properties"]) for email, r in latest.items()],
                )
                by_email = {(o.properties.get("email") or "").lower(): o for o in results}
                for r in contacts:
                    found = by_email.get(r.payload["email"])
                    if found is not None:
                        done(r, found.id, "hubspot.upsert")

            guarded(contacts, upsert_contacts)
        # Deals: the tenant's stage mapping decides pipeline and stage, or the deal waits.
        deals = []
        for r in by_kind[("create", "deal")]:
            intent = r.payload.get("intent")
            if intent:
                target = stages.get(intent)
                if target is None:
                    out.held[r.id] = f"no_stage_mapping: no pipeline stage is mapped for {intent}"
                    continue
                r.payload["properties"] = {
                    **r.payload["properties"],
                    "pipeline": target[0],
                    "dealstage": target[1],
                }
            deals.append(r)
        for object_type in ("deal", *ENGAGEMENT_TYPES):
            creates = deals if object_type == "deal" else by_kind[("create", object_type)]
            ready = []
            for r in creates:
                links = []
                for link in r.payload.get("associations", []):
                    target_id = ext(link["to_type"], link["to_id"])
                    if target_id is None:
                        out.waiting[r.id] = f"waiting for {link['to_type']} {link['to_id']}"
                        break
                    links.append(
                        Association(
                            "", target_id, ASSOCIATION_TYPES[(object_type, link["to_type"])]
                        )
                    )
                else:
                    ready.append((r, links))
            if ready:
                guarded(
                    [r for r, _ in ready],
                    partial(self._create_all, api, object_type, ready, done, out, report),
                )
        # Associations (v4 batch), then updates.
        links_by_pair: dict[tuple[str, str], list[tuple[Row, Association]]] = defaultdict(list)
        for (operation, from_type), assoc_rows in by_kind.items():
            if operation != "associate":
                continue
            for r in assoc_rows:
                from_id = ext(from_type, r.internal_id or "")
                to_id = ext(r.payload["to_type"], r.payload["to_id"])
                if from_id is None or to_id is None:
                    out.waiting[r.id] = "waiting for both records to reach HubSpot"
                    continue
                type_id = ASSOCIATION_TYPES[(from_type, r.payload["to_type"])]
                links_by_pair[(from_type, r.payload["to_type"])].append(
                    (r, Association(from_id, to_id, type_id))
                )
        for (from_type, to_type), pairs in links_by_pair.items():

            def associate(
                pairs: list[tuple[Row, Association]] = pairs, f: str = from_type, t: str = to_type
            ) -> None:
                api.associate(HUBSPOT_TYPES[f], HUBSPOT_TYPES[t], [a for _, a in pairs])
                for r, a in pairs:
                    done(r, a.from_id, "hubspot.associate")

            guarded([r for r, _ in pairs], associate)
        for (operation, object_type), update_rows in by_kind.items():
            if operation != "update":
                continue
            ready_updates = []
            for r in update_rows:
                target_id = ext(object_type, r.internal_id or "")
                properties = dict(r.payload["properties"])
                intent = r.payload.get("intent")
                if intent:
                    target = stages.get(intent)
                    if target is None:
                        out.held[r.id] = (
                            f"no_stage_mapping: no pipeline stage is mapped for {intent}"
                        )
                        continue
                    properties.update(pipeline=target[0], dealstage=target[1])
                if target_id is None:
                    out.waiting[r.id] = f"waiting for {object_type} {r.internal_id}"
                    continue
                ready_updates.append((r, target_id, properties))
            if ready_updates:

                def apply(
                    items: list[tuple[Row, str, dict[str, str]]] = ready_updates,
                    t: str = object_type,
                ) -> None:
                    api.batch_update(HUBSPOT_TYPES[t], [(i, p) for _, i, p in items])
                    for r, i, _ in items:
                        done(r, i, "hubspot.update")

                guarded([r for r, _, _ in ready_updates], apply)

    def _companies(
        self,
        api: HubSpotApi,
        rows: list[Row],
        done: Callable[[Row, str | None, str], None],
        out: _Outcome,
        report: PushReport,
    ) -> None:
        domains = sorted({r.payload["domain"] for r in rows})
        existing = api.search_in("companies", "domain", domains, ["domain", MARKER_PROPERTY])
        by_domain: dict[str, str] = {}
        for company in sorted(existing, key=lambda o: int(o.id) if o.id.isdigit() else 0):
            by_domain.setdefault((company.properties.get("domain") or "").lower(), company.id)
        missing: dict[str, Row] = {}
        for r in rows:
            found = by_domain.get(r.payload["domain"])
            if found is not None:
                done(r, found, "hubspot.matched")
            else:
                missing.setdefault(r.payload["domain"], r)
        creates: list[tuple[Row, list[Association]]] = [(r, []) for r in missing.values()]
        if creates:
            self._create_all(api, "company", creates, done, out, report)
        for r in rows:
            if r.id not in out.done and r.payload["domain"] in missing:
                first = missing[r.payload["domain"]]
                if first.id in out.done:
                    done(r, out.done[first.id], "hubspot.matched")

    def _create_all(
        self,
        api: HubSpotApi,
        object_type: str,
        items: Sequence[tuple[Row, list[Association]]],
        done: Callable[[Row, str | None, str], None],
        out: _Outcome,
        report: PushReport,
    ) -> None:
        hs_type = HUBSPOT_TYPES[object_type]
        for start in range(0, len(items), 100):
            self._create_batch(api, hs_type, list(items[start : start + 100]), done, report)

    def _create_batch(
        self,
        api: HubSpotApi,
        hs_type: str,
        items: list[tuple[Row, list[Association]]],
        done: Callable[[Row, str | None, str], None],
        report: PushReport,
    ) -> None:
        remaining = {r.key: (r, links) for r, links in items}
        for round_number in range(4):
            # Rows sent before (a crash or an unclear answer) may exist already: read them by
            # our unique marker first, and create only what HubSpot does not have.
            suspect = [k for k, (r, _) in remaining.items() if r.attempts > 0 or round_number > 0]
            if suspect:
                for found in api.batch_read(
                    hs_type, suspect, id_property=MARKER_PROPERTY, properties=[MARKER_PROPERTY]
                ):
                    key = found.properties.get(MARKER_PROPERTY)
                    if key in remaining:
                        done(remaining.pop(key)[0], found.id, "hubspot.reconciled")
                        report.reconciled += 1
            if not remaining:
                return
            batch = list(remaining.values())
            self._count_attempt([r for r, _ in batch])
            try:
                created = api.batch_create(
                    hs_type,
                    [
                        ({**r.payload["properties"], MARKER_PROPERTY: r.key}, links)
                        for r, links in batch
                    ],
                )
            except (CrmConflict, CrmAmbiguous):
                continue
            for obj in created:
                key = obj.properties.get(MARKER_PROPERTY)
                if key in remaining:
                    done(remaining.pop(key)[0], obj.id, "hubspot.create")
            if not remaining:
                return
        raise CrmUnavailable(f"{len(remaining)} {hs_type} could not be confirmed at HubSpot")

    # -- step 3: record --------------------------------------------------------------------

    def _record(self, rows: list[Row], out: _Outcome, report: PushReport) -> None:
        with self._uow(self.tenant_id) as uow:
            if out.mappings:
                uow.execute(
                    insert(CrmMapping)
                    .values(
                        [
                            {
                                "id": uuid.uuid4(),
                                "tenant_id": uow.tenant_id,
                                "provider": PROVIDER,
                                "internal_type": internal_type,
                                "internal_id": uuid.UUID(internal_id),
                                "external_id": external_id,
                                "idempotency_key": key[:255],
                            }
                            for (internal_type, internal_id), (
                                external_id,
                                key,
                            ) in out.mappings.items()
                        ]
                    )
                    .on_conflict_do_nothing(
                        index_elements=[
                            CrmMapping.tenant_id,
                            CrmMapping.provider,
                            CrmMapping.internal_type,
                            CrmMapping.internal_id,
                        ]
                    )
                )
            groups: dict[tuple[str, str | None], list[dict[str, Any]]] = defaultdict(list)
            for row in rows:
                if row.id in out.done:
                    groups[("done", None)].append({"i": row.id, "x": out.done[row.id]})
                    report.done += 1
                elif row.id in out.rejected:
                    groups[("rejected", out.rejected[row.id][:1000])].append({"i": row.id})
                    report.rejected += 1
                elif row.id in out.held:
                    groups[("held", out.held[row.id][:1000])].append({"i": row.id})
                    report.held += 1
                else:
                    groups[("pending", out.waiting.get(row.id))].append({"i": row.id})
                    report.left_pending += 1
            for (status, reason), items in groups.items():
                ids = [item["i"] for item in items]
                where = (CrmPendingWrite.tenant_id == uow.tenant_id, CrmPendingWrite.id.in_(ids))
                if status == "done":
                    uow.execute(
                        update(CrmPendingWrite)
                        .where(*where)
                        .values(
                            status="done",
                            reason=None,
                            external_id=case(
                                {item["i"]: item["x"] for item in items},
                                value=CrmPendingWrite.id,
                            ),
                        )
                    )
                elif status == "pending":
                    uow.execute(
                        update(CrmPendingWrite).where(*where).values(reason=reason, claimed_at=None)
                    )
                else:
                    uow.execute(
                        update(CrmPendingWrite).where(*where).values(status=status, reason=reason)
                    )
            audit_crm_writes(uow, _Writes(out.writes), ADAPTER_ACTOR)


def _references(row: Row) -> Iterable[str]:
    if row.internal_id:
        yield row.internal_id
    for link in row.payload.get("associations", []):
        yield link["to_id"]
    if row.operation == "associate":
        yield row.payload["to_id"]


def push_pending(tenant_id: uuid.UUID, env: HubSpotEnvironment | None = None) -> PushReport:
    return HubSpotPusher(tenant_id, env).push()


def external_to_internal(
    uow: TenantUnitOfWork, internal_type: str, external_id: str
) -> uuid.UUID | None:
    found: uuid.UUID | None = uow.session.scalar(
        select(CrmMapping.internal_id).where(
            CrmMapping.tenant_id == uow.tenant_id,
            CrmMapping.provider == PROVIDER,
            CrmMapping.internal_type == internal_type,
            CrmMapping.external_id == external_id,
        )
    )
    return found


def hubspot_tenants() -> list[uuid.UUID]:
    """Tenants that ever connected HubSpot (their portal route), for the periodic push."""
    with directory_unit_of_work() as duow:
        return sorted(
            set(
                duow.execute(
                    select(DirectoryRoute.tenant_id).where(
                        DirectoryRoute.kind == RouteKind.HUBSPOT_PORTAL.value
                    )
                ).scalars()
            )
        )

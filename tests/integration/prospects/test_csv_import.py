"""CSV import: streamed, validated, deduped, suppression-checked; every bad row reported,
every good row kept, nothing half-written; re-importing changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import func, select

from shared.audit.schemas import Actor, ActorType
from shared.db.unit_of_work import TenantUnitOfWork, tenant_unit_of_work
from shared.identity.schemas import TenantRead
from shared.prospects.csv_stream import CsvFormatError, CsvStream
from shared.prospects.orm import Company, Prospect
from shared.prospects.schemas import ImportReport
from shared.prospects.service import import_prospects

ACTOR = Actor(type=ActorType.USER, id="importer")


def no_suppression(uow: TenantUnitOfWork, emails: Sequence[str]) -> set[str]:
    return set()


def chunked(data: bytes, size: int = 7) -> Iterator[bytes]:
    # Tiny chunks: multi-byte characters and quoted newlines straddle chunk boundaries.
    for start in range(0, len(data), size):
        yield data[start : start + size]


def run_import(
    tenant: TenantRead,
    data: bytes,
    *,
    encoding: str = "utf-8-sig",
    suppressed: set[str] | None = None,
) -> ImportReport:
    blocked = suppressed or set()
    with tenant_unit_of_work(tenant.id) as uow:
        return import_prospects(
            uow,
            CsvStream(chunked(data), encoding=encoding),
            source="csv",
            actor=ACTOR,
            suppressed=lambda _, emails: {e for e in emails if e in blocked},
        )


def counts(tenant: TenantRead) -> tuple[int, int]:
    with tenant_unit_of_work(tenant.id) as uow:
        prospects = uow.session.scalar(
            select(func.count()).select_from(uow.scoped(Prospect).subquery())
        )
        companies = uow.session.scalar(
            select(func.count()).select_from(uow.scoped(Company).subquery())
        )
    return int(prospects or 0), int(companies or 0)


GOOD = (
    "Email,First Name,Last Name,Job Title,Company,Website,Unmapped\n"
    "Ana@Acme.com,Ana,Álvarez,CTO,Acme,https://www.acme.com/about,x\n"
    'bo@acme.com,Bo,"Line\nBreak",VP Sales,Acme,acme.com,y\n'
    "cy@globex.example,Cy,Zhang,Head of Ops,Globex,,z\n"
).encode()


def test_good_rows_are_imported_with_companies_linked_by_domain(tenant: TenantRead) -> None:
    report = run_import(tenant, GOOD)
    assert (report.rows, report.imported, report.rejected) == (3, 3, 0)
    assert report.companies_created == 2
    assert report.ignored_columns == ["Unmapped"]
    assert counts(tenant) == (3, 2)
    with tenant_unit_of_work(tenant.id) as uow:
        ana = uow.session.scalars(
            uow.scoped(Prospect).where(Prospect.email == "ana@acme.com")
        ).one()
        bo = uow.session.scalars(uow.scoped(Prospect).where(Prospect.email == "bo@acme.com")).one()
        assert ana.company_id == bo.company_id
        assert ana.last_name == "Álvarez"
        assert bo.last_name == "Line\nBreak"


def test_reimporting_the_same_file_changes_nothing(tenant: TenantRead) -> None:
    run_import(tenant, GOOD)
    again = run_import(tenant, GOOD)
    assert (again.imported, again.already_present, again.companies_created) == (0, 3, 0)
    assert counts(tenant) == (3, 2)


def test_every_bad_row_is_reported_and_every_good_row_kept(tenant: TenantRead) -> None:
    lines = ["email,first_name,domain"]
    expected_bad: dict[int, str] = {}
    for n in range(100):
        line_number = n + 2
        if n % 10 == 3:
            lines.append(f"not-an-address-{n},X,")
            expected_bad[line_number] = "invalid email"
        elif n % 10 == 7:
            lines.append(f"p{n - 1}@corp.example,Dup,")
            expected_bad[line_number] = f"duplicate of line {line_number - 1}"
        elif n == 55:
            lines.append(f"p{n}@corp.example,Bad,not a domain!")
            expected_bad[line_number] = "not a domain"
        elif n == 88:
            lines.append(f"p{n}@corp.example,Extra,corp.example,surplus")
            expected_bad[line_number] = "more field(s) than the header"
        else:
            lines.append(f"p{n}@corp.example,P{n},")
    report = run_import(tenant, ("\n".join(lines) + "\n").encode())
    assert report.rows == 100
    assert report.rejected == len(expected_bad) == 22
    assert report.imported == 100 - 22
    got = {error.line: error.reason for error in report.errors}
    assert got.keys() == expected_bad.keys()
    for line, reason in expected_bad.items():
        assert reason in got[line], (line, got[line])
    assert counts(tenant)[0] == 78


def test_suppressed_addresses_are_kept_but_marked(tenant: TenantRead) -> None:
    report = run_import(tenant, GOOD, suppressed={"bo@acme.com"})
    assert report.suppressed == 1
    with tenant_unit_of_work(tenant.id) as uow:
        bo = uow.session.scalars(uow.scoped(Prospect).where(Prospect.email == "bo@acme.com")).one()
        assert bo.status == "suppressed"


@pytest.mark.parametrize(
    ("data", "encoding", "message"),
    [
        ("email,name\nzoë@example.com,Zoë\n".encode("latin-1"), "utf-8-sig", "not valid utf-8-sig"),
        (b"\xff\xfe\x00", "utf-8-sig", "not valid utf-8-sig"),
        (b"name,title\nAna,CTO\n", "utf-8-sig", "Missing required column(s): email"),
        (b"", "utf-8-sig", "empty"),
        (b'email,name\n"a@b.com,unterminated\n', "utf-8-sig", "not valid CSV"),
        (b"email\na@b.com\n", "ebcdic", "Unsupported encoding"),
    ],
)
def test_unreadable_files_are_refused_whole(
    tenant: TenantRead, data: bytes, encoding: str, message: str
) -> None:
    with pytest.raises(CsvFormatError) as raised:
        run_import(tenant, data, encoding=encoding)
    assert message in str(raised.value)
    assert counts(tenant) == (0, 0), "nothing from a refused file is kept"


def test_an_encoding_error_after_written_batches_keeps_nothing(tenant: TenantRead) -> None:
    rows = "".join(f"p{n}@corp.example,P{n}\n" for n in range(2500))
    data = ("email,first_name\n" + rows).encode() + "late@corp.example,Zoë\n".encode("latin-1")
    with pytest.raises(CsvFormatError) as raised:
        run_import(tenant, data)
    assert "line 2502" in str(raised.value)
    assert counts(tenant) == (0, 0)


def test_a_windows_1252_export_imports_when_declared(tenant: TenantRead) -> None:
    data = "email,first_name\nzoe@example.com,Zoë\n".encode("windows-1252")
    report = run_import(tenant, data, encoding="windows-1252")
    assert report.imported == 1


def test_tenants_do_not_share_prospects_or_companies(tenant: TenantRead) -> None:
    from tests.conftest import make_tenant

    other = make_tenant("o")
    run_import(tenant, GOOD)
    report = run_import(other, GOOD)
    assert (report.imported, report.companies_created) == (3, 2)
    assert counts(other) == (3, 2)
    assert uuid.UUID(str(other.id)) != tenant.id


def test_import_over_http_reports_rows_and_honours_suppression(tenant: TenantRead) -> None:
    from fastapi.testclient import TestClient

    from http_api.app import create_app
    from shared.identity import dev_issuer
    from shared.identity.model import Role

    headers = {"Authorization": f"Bearer {dev_issuer.dev_token(tenant.slug, Role.REVOPS)}"}
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        suppressed = client.post(
            "/v1/suppressions", json={"kind": "address", "value": "bo@acme.com"}, headers=headers
        )
        assert suppressed.status_code == 201, suppressed.text
        raw = client.post(
            "/v1/prospects/import",
            content=GOOD,
            headers={**headers, "content-type": "text/csv"},
        )
        assert raw.status_code == 200, raw.text
        assert (raw.json()["imported"], raw.json()["suppressed"]) == (3, 1)
        multipart = client.post(
            "/v1/prospects/import",
            files={"file": ("prospects.csv", GOOD, "text/csv")},
            headers=headers,
        )
        assert multipart.status_code == 200, multipart.text
        assert multipart.json()["already_present"] == 3
        unreadable = client.post(
            "/v1/prospects/import",
            content=b"name\nAna\n",
            headers={**headers, "content-type": "text/csv"},
        )
        assert unreadable.status_code == 422
        assert unreadable.json()["code"] == "csv_unreadable"
        listed = client.get("/v1/prospects?status=suppressed", headers=headers).json()
        assert [p["email"] for p in listed["items"]] == ["bo@acme.com"]


def test_batches_share_companies_and_dedupe_across_each_other(
    tenant: TenantRead, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.prospects import service

    monkeypatch.setattr(service, "BATCH_ROWS", 2)
    data = (
        b"email,first_name,website\n"
        b"a@acme.com,A,acme.com\n"
        b"b@globex.example,B,\n"
        b"c@acme.com,C,https://acme.com\n"
        b"A@acme.com,Dup,acme.com\n"
        b"d@initech.example,D\x00,\n"
        b"e@globex.example,E,\n"
        b"f@globex.example," + b"F" * 101 + b",\n"
    )
    report = run_import(tenant, data, suppressed={"e@globex.example"})
    assert (report.rows, report.imported, report.companies_created) == (7, 4, 2)
    assert (report.suppressed, report.already_present) == (1, 0)
    assert {(e.line, e.reason) for e in report.errors} == {
        (5, "duplicate of line 2"),
        (6, "first_name contains a NUL character"),
        (8, "first_name is longer than 100 characters"),
    }
    with tenant_unit_of_work(tenant.id) as uow:
        linked = {p.email: p.company_id for p in uow.session.scalars(uow.scoped(Prospect)).all()}
    assert linked["a@acme.com"] == linked["c@acme.com"] is not None
    assert linked["b@globex.example"] == linked["e@globex.example"] is not None
    again = run_import(tenant, data)
    assert (again.imported, again.already_present, again.companies_created) == (0, 4, 0)


def test_an_unknown_time_zone_is_a_bad_row_not_a_later_meeting_failure(tenant: TenantRead) -> None:
    from pydantic import ValidationError

    from shared.prospects.schemas import ProspectUpdate

    data = (
        b"email,first_name,time_zone\n"
        b"a@acme.com,A,Europe/Berlin\n"
        b"b@acme.com,B,Mars/Olympus\n"
        b"c@acme.com,C,\n"
    )
    report = run_import(tenant, data)
    assert (report.imported, report.rejected) == (2, 1)
    assert [(e.line, e.email) for e in report.errors] == [(3, "b@acme.com")]
    assert "Mars/Olympus" in report.errors[0].reason
    with tenant_unit_of_work(tenant.id) as uow:
        zones = {p.email: p.time_zone for p in uow.session.scalars(uow.scoped(Prospect)).all()}
    assert zones == {"a@acme.com": "Europe/Berlin", "c@acme.com": None}
    with pytest.raises(ValidationError, match="not an IANA time zone"):
        ProspectUpdate(time_zone="Mars/Olympus")
    assert ProspectUpdate(time_zone="America/New_York").time_zone == "America/New_York"

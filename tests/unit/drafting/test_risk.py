"""Content risk: table-driven, each row a draft and the signal it must (or must not) raise."""

from __future__ import annotations

import pytest

from shared.drafting.risk import (
    DraftText,
    RiskSettings,
    assess_content,
    find_pii,
    find_prohibited_claims,
    find_unresolved_variables,
    iban_valid,
    luhn_valid,
)

ADDRESS = "Acme Inc., 1 Main Street, Springfield, IL 62701, USA"
SETTINGS = RiskSettings(
    prohibited_claims=("guaranteed ROI", "100% secure", "risk-free"),
    postal_address=ADDRESS,
    unsubscribe_markers=("https://asep.example/u/",),
    allowed=("sam@acme.example", "+1 555 010 9999"),
)
CLEAN_FOOTER = f"\n\n{ADDRESS}\nUnsubscribe: https://asep.example/u/abc.def"


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("4111111111111111", True),
        ("4111111111111112", False),
        ("5500005555555559", True),
        ("378282246310005", True),
        ("0", False),
        ("", False),
    ],
)
def test_luhn(number: str, valid: bool) -> None:
    assert luhn_valid(number) is valid


@pytest.mark.parametrize(
    ("iban", "valid"),
    [
        ("GB82 WEST 1234 5698 7654 32", True),
        ("GB82WEST12345698765432", True),
        ("DE89370400440532013000", True),
        ("DE89370400440532013001", False),
        ("GB82 WEST 1234", False),
        ("XX00 0000 0000 0000 00", False),
    ],
)
def test_iban_mod_97(iban: str, valid: bool) -> None:
    assert iban_valid(iban) is valid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Pay with 4111 1111 1111 1111 today", ["card"]),
        ("Pay with 4111-1111-1111-1111 today", ["card"]),
        ("Order 4111 1111 1111 1112 is not a card", []),
        ("Wire to GB82 WEST 1234 5698 7654 32 please", ["iban"]),
        ("Reference DE89370400440532013001 is not valid", []),
        ("Ask jane.doe@other.example about it", ["email"]),
        ("Write to sam@acme.example any time", []),
        ("Call me on +44 20 7946 0958", ["phone"]),
        ("Call (415) 555-0132 tomorrow", ["phone"]),
        ("Our line +1 555 010 9999 is open", []),
        ("We met on 2024-03-15 at 10:30", []),
        ("Revenue grew 25% in 2023", []),
        (
            "Card 4111111111111111, mail x@y.example, call +33 1 23 45 67 89",
            ["card", "email", "phone"],
        ),
    ],
)
def test_pii(text: str, expected: list[str]) -> None:
    assert find_pii(text, SETTINGS.allowed) == expected


def test_prohibited_claims_match_case_and_line_breaks_but_not_inside_words() -> None:
    text = "We offer a GUARANTEED\n  roi and a risk-free trial."
    assert find_prohibited_claims(text, SETTINGS.prohibited_claims) == [
        "guaranteed ROI",
        "risk-free",
    ]
    assert find_prohibited_claims("guaranteed ROIs", ["guaranteed ROI"]) == []
    assert find_prohibited_claims("anything", ["", "   "]) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi {{ first_name }},", ["first_name"]),
        ("Hi {{first_name}} at {company}", ["first_name", "company"]),
        ("Hi {{ }}", ["{{}}"]),
        ('JSON like {"a": 1} is not a variable', []),
        ("Hi Jane", []),
        ("{{a}} {{a}}", ["a"]),
    ],
)
def test_unresolved_variables(text: str, expected: list[str]) -> None:
    assert find_unresolved_variables(text) == expected


def test_a_clean_draft_has_no_signal_and_scores_zero() -> None:
    content = assess_content(DraftText("Quick question", "Hi Jane," + CLEAN_FOOTER), SETTINGS)
    assert content.pii_types == []
    assert content.prohibited_claims == []
    assert not content.missing_unsubscribe
    assert not content.missing_postal_address
    assert content.unresolved_variables == []
    assert content.risk_score == 0.0


def test_can_spam_footer_parts_are_each_required() -> None:
    no_address = assess_content(
        DraftText("Hi", "Body\nUnsubscribe: https://asep.example/u/x"), SETTINGS
    )
    assert no_address.missing_postal_address
    assert not no_address.missing_unsubscribe
    no_link = assess_content(DraftText("Hi", f"Body\n{ADDRESS}"), SETTINGS)
    assert no_link.missing_unsubscribe
    assert not no_link.missing_postal_address
    reflowed = assess_content(
        DraftText("Hi", "Body\nAcme Inc.\n1 Main Street\nSpringfield, IL 62701, USA\nopt out"),
        SETTINGS,
    )
    assert not reflowed.missing_postal_address
    unconfigured = assess_content(
        DraftText("Hi", f"Body{CLEAN_FOOTER}"), RiskSettings(postal_address=None)
    )
    assert unconfigured.missing_postal_address


def test_risk_score_grows_with_signals_and_is_capped() -> None:
    risky = assess_content(
        DraftText("{{subject}}", "Guaranteed ROI! Card 4111 1111 1111 1111"), SETTINGS
    )
    assert risky.risk_score == 1.0
    assert risky.unresolved_variables == ["subject"]
    assert risky.prohibited_claims == ["guaranteed ROI"]
    assert risky.pii_types == ["card"]
    one = assess_content(
        DraftText("Hi", "Body" + CLEAN_FOOTER + " call +44 20 7946 0958"), SETTINGS
    )
    assert 0 < one.risk_score < 1.0


def test_settings_come_from_the_tenant_settings_document() -> None:
    settings = RiskSettings.from_tenant_settings(
        {"prohibited_claims": ["best in class", " "], "postal_address": ADDRESS}
    )
    assert settings.prohibited_claims == ("best in class",)
    assert settings.postal_address == ADDRESS
    assert RiskSettings.from_tenant_settings({}).postal_address is None

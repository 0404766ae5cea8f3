"""Only the new text of a reply is classified: quoted history, forwards and signatures go."""

from __future__ import annotations

import pytest

from shared.replies.reduce import html_to_text, message_text, new_text
from tests.unit.replies.messages import human

QUOTE = "> Hi Pat,\n> Would a 20-minute call next week be useful?\n> Sam"


@pytest.mark.parametrize(
    "header",
    [
        "On Tue, 3 Mar 2026 at 09:12, Sam Rivera <sam@sender.example> wrote:",
        "On Mar 3, 2026, at 9:12 AM, Sam Rivera <sam@sender.example>\nwrote:",
        "Am Di., 3. März 2026 um 09:12 Uhr schrieb Sam Rivera <sam@sender.example>:",
        "Le mar. 3 mars 2026 à 09:12, Sam Rivera <sam@sender.example> a écrit :",
        "El mar, 3 mar 2026 a las 9:12, Sam Rivera (<sam@sender.example>) escribió:",
        "Em 3 de março de 2026 às 09:12, Sam Rivera (\nsam@sender.example) escreveu:",
    ],
)
def test_quoted_history_is_removed_in_each_client_style(header: str) -> None:
    body = f"Yes, Tuesday works.\n\n{header}\n\n{QUOTE}\n"
    assert new_text(body) == "Yes, Tuesday works."


def test_outlook_header_block_without_quote_marks_is_removed() -> None:
    body = (
        "Not interested, thanks.\n\n________________________________\n"
        "From: Sam Rivera <sam@sender.example>\nSent: Tuesday, March 3, 2026 9:12 AM\n"
        "To: Pat\nSubject: Quick idea\n\nHi Pat, would a call be useful?"
    )
    assert new_text(body) == "Not interested, thanks."


def test_forwarded_copy_and_mobile_signature_are_removed() -> None:
    body = (
        "Looping in Maria who owns this.\n\nSent from my iPhone\n\n"
        "---------- Forwarded message ---------\nFrom: Sam <sam@sender.example>\n\nHi Pat"
    )
    assert new_text(body) == "Looping in Maria who owns this."


def test_a_bare_quote_leaves_no_new_text() -> None:
    assert new_text(QUOTE) == ""


def test_html_only_body_is_converted_and_its_blockquote_dropped() -> None:
    markup = (
        "<html><body><div>Happy to chat&nbsp;on Friday.</div><br>"
        '<div class="gmail_quote">On Tue, Sam wrote:<blockquote>Hi Pat</blockquote></div>'
        "</body></html>"
    )
    read = message_text(human(markup, html=True))
    assert read.html_only
    assert new_text(read.body) == "Happy to chat on Friday."
    assert html_to_text("<p>a</p><p>b</p>") == "a\nb"


def test_wrong_charset_is_decoded_and_reported() -> None:
    raw = (
        b"From: a@b.example\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\nGr\xfc\xdfe, gerne ein Termin.\r\n"
    )
    read = message_text(raw)
    assert "gerne ein Termin" in read.body
    assert any("charset" in problem for problem in read.problems)

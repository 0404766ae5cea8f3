"""The labelled sales replies (shared/replies/data): parsing and MIME construction.

Each record becomes a real message, so training and evaluation go through the same path as
production mail: MIME decoding, HTML conversion, quote and signature stripping.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
TRAIN_PATH = DATA_DIR / "train.txt"
EVAL_PATH = DATA_DIR / "eval.txt"

OUR_EMAIL = (
    "Hi {name},\n\nI noticed your team is hiring SDRs. We help sales teams research accounts "
    "and send governed outbound at scale.\n\nWould a 20-minute call next week be useful?\n\n"
    "Best,\nSam Rivera\nShaunAI\n\n--\nShaunAI Ltd, 1 Example Street, London\n"
    "Unsubscribe: https://asep.example/u/abc"
)
QUOTE_HEADERS = (
    "On Tue, 3 Mar 2026 at 09:12, Sam Rivera <sam@shaunai.example> wrote:",
    "From: Sam Rivera <sam@shaunai.example>\nSent: Tuesday, March 3, 2026 9:12 AM\n"
    "To: {name} <{name}@buyer.example>\nSubject: Quick idea",
    "On Mar 3, 2026, at 9:12 AM, Sam Rivera <sam@shaunai.example> wrote:",
    "Am Di., 3. März 2026 um 09:12 Uhr schrieb Sam Rivera <sam@shaunai.example>:",
    "Le mar. 3 mars 2026 à 09:12, Sam Rivera <sam@shaunai.example> a écrit :",
    "El mar, 3 mar 2026 a las 9:12, Sam Rivera (<sam@shaunai.example>) escribió:",
)
SIGNATURES = ("", "\n\nSent from my iPhone", "\n\n-- \nJ. Doe | Director\n+1 555 0100", "")


@dataclass(frozen=True)
class LabelledReply:
    label: str
    sub_label: str | None
    lang: str
    flags: frozenset[str]
    text: str


def load(path: Path) -> list[LabelledReply]:
    records: list[LabelledReply] = []
    header: list[str] | None = None
    body: list[str] = []

    def flush() -> None:
        if header is not None:
            label, _, sub = header[0].partition("/")
            records.append(
                LabelledReply(
                    label, sub or None, header[1], frozenset(header[2:]), "\n".join(body).strip()
                )
            )

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            flush()
            header, body = line[3:].split(), []
        else:
            body.append(line)
    flush()
    return records


def _quoted(index: int) -> str:
    header = QUOTE_HEADERS[index % len(QUOTE_HEADERS)].format(name="pat")
    original = OUR_EMAIL.format(name="Pat")
    if index % len(QUOTE_HEADERS) == 1:  # Outlook quotes without ">"
        return f"\n\n________________________________\n{header}\n\n{original}"
    return f"\n\n{header}\n\n" + "\n".join("> " + line for line in original.splitlines())


def to_mime(record: LabelledReply, index: int) -> bytes:
    """The record as the reply a prospect's mail client would send."""
    text = record.text + SIGNATURES[index % len(SIGNATURES)]
    if "fwd" in record.flags:
        text += (
            "\n\n---------- Forwarded message ---------\nFrom: Sam Rivera <sam@shaunai.example>\n"
            "Date: Tue, Mar 3, 2026 at 9:12 AM\nSubject: Quick idea\n\n"
            + OUR_EMAIL.format(name="Pat")
        )
    elif "quoted" in record.flags:
        text += _quoted(index)
    message = EmailMessage(policy=SMTP)
    message["From"] = "Pat Buyer <pat@buyer.example>"
    message["To"] = "sam@shaunai.example"
    message["Subject"] = "Re: Quick idea"
    message["Message-ID"] = f"<labelled-{index}@buyer.example>"
    if "html" in record.flags:
        paragraphs = "".join(
            f"<div>{html.escape(line) or '<br>'}</div>" for line in text.split("\n")
        )
        message.set_content(f"<html><body>{paragraphs}</body></html>", subtype="html")
    else:
        message.set_content(text)
    return message.as_bytes()

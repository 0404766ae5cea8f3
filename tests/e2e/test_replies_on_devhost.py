"""Replies of every class end to end on devhost, through the HTTP API: one campaign, one
prospect per class, each answering its first touch. Human replies are written here; the
bounces, the complaint and the auto-replies are real messages from the sisimai corpus,
re-addressed to our touch the way an MTA or a responder does it (the Message-ID the report
quotes, or In-Reply-To). Every outcome is read from the API, and every prospect's story is
checked in the audit log under its journey's correlation id."""

from __future__ import annotations

import base64
import re
import uuid
from collections import Counter
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from shared.db.server import DatabaseUrls
from tests.devhost.conftest import DevhostProcess
from tests.e2e.harness import REPO, Customer, onboard, wait_until

SISIMAI = REPO.parent / "shared" / "corpora" / "sisimai" / "bsd"
# Real messages, labelled in the corpus's labels.json: a Postfix 5.1.1 (hard), a Postfix
# mailbox-full (soft), a Return Path ARF abuse report, an Apple vacation responder.
HARD_BOUNCE = "lhost-postfix-04.eml"
SOFT_BOUNCE = "lhost-postfix-10.eml"
COMPLAINT = "arf-15.eml"
OUT_OF_OFFICE = "rfc3834-03.eml"
LOOPING_AUTO_REPLIES = 5
FOLLOW_UP = "Following up for {{company_name}}"
SEQUENCE: dict[str, Any] = {
    "name": "touch, wait, follow up",
    "steps": [
        {
            "id": "t1",
            "type": "email",
            "subject": "Idea for {{company_name}}",
            "body": "Hi {{first_name}},\n\n{{personalization}}\n\nWorth a quick chat?",
            "approval": "every_time",
            "next": "d1",
        },
        # Long enough that only a reply can end a journey while the test runs.
        {"id": "d1", "type": "delay", "seconds": 900, "next": "t2"},
        {
            "id": "t2",
            "type": "email",
            "subject": FOLLOW_UP,
            "body": "Hi {{first_name}}, bumping this in case it got buried.",
            "approval": "once",
        },
    ],
    "variables": ["personalization"],
}
# One prospect per outcome; the local part names the case.
PROSPECTS = {
    "hot": "Yes, this is timely: we are evaluating tools like this right now. "
    "Can you do Tuesday at 2pm for a call?",
    # The offline model gives this about 0.70: between the 0.65 and 0.85 deal thresholds.
    "warm": "Could be interesting.",
    "neutral": "Thanks for reaching out. What integrations do you support?",
    "objection": "We already use Outreach and are happy with it, so we'll pass.",
    "unsubscribe": "Please remove me from your list.",
    "ooo": None,
    "hard": None,
    "soft": None,
    "complaint": None,
    "loop": None,
    # Over the 10 MiB the inbound path stores whole: a reply with a large attachment.
    "large": "No budget for this until next fiscal year, sorry. Attached is our procurement "
    "policy for later.",
}
HUMAN = {"hot", "warm", "neutral", "objection", "large"}
LARGE_ATTACHMENT = 11 << 20


def _address(case: str) -> str:
    return f"{case}@{case}-co.example"


def _corpus(name: str) -> bytes:
    path = SISIMAI / name
    if not path.is_file():
        pytest.skip(f"the sisimai corpus is not at {SISIMAI}")
    return path.read_bytes()


def _header_ids(raw: bytes, name: bytes) -> list[bytes]:
    head = raw.split(b"\n\n", 1)[0].replace(b"\r\n", b"\n")
    found = re.search(rb"^" + name + rb":[ \t]*(.*(?:\n[ \t].*)*)", head, re.I | re.M)
    return re.findall(rb"<[^<>\s]+@[^<>\s]+>", found.group(1)) if found else []


def _rethreaded(raw: bytes, touch_message_id: str, *, reported: bool) -> bytes:
    """A corpus message as it would arrive about our touch: a report quotes our Message-ID
    in its original-message part, a responder answers it in In-Reply-To/References. It gets
    a fresh Message-ID of its own, so the same file can arrive more than once."""
    (own,) = _header_ids(raw, b"Message-Id")
    ours = touch_message_id.encode()
    if reported:
        inner = raw.split(b"\n\n", 1)[1]
        original = re.search(rb"^Message-Id:[ \t]*(<[^<>\s]+@[^<>\s]+>)", inner, re.I | re.M)
        assert original is not None, "the report quotes no original Message-ID"
        raw = raw.replace(original.group(1), ours)
    else:
        (answered,) = _header_ids(raw, b"In-Reply-To")
        raw = raw.replace(answered, ours)
    return raw.replace(own, f"<{uuid.uuid4().hex}@responder.example>".encode())


def _human_reply(address: str, touch: dict[str, Any], text: str) -> bytes:
    return (
        f"From: <{address}>\r\nTo: sam@vendor.example\r\nSubject: Re: {touch['subject']}\r\n"
        f"Date: Fri, 27 Nov 2026 09:00:00 +0000\r\n"
        f"Message-ID: <reply-{uuid.uuid4().hex}@{address.split('@')[1]}>\r\n"
        f"In-Reply-To: {touch['message_id']}\r\nReferences: {touch['message_id']}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n\r\n"
        f"On Fri, Sam <sam@vendor.example> wrote:\r\n> Hi,\r\n> Worth a quick chat?\r\n"
    ).encode()


def _with_attachment(reply: bytes, size: int) -> bytes:
    """`reply` (headers, then a text body) as multipart/mixed with a PDF of `size` bytes."""
    head, _, text = reply.partition(b"\r\n\r\n")
    head = head.replace(b"Content-Type: text/plain; charset=utf-8", b"MIME-Version: 1.0")
    attachment = base64.encodebytes(bytes(size)).replace(b"\n", b"\r\n")
    return (
        head + b'\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text + b"\r\n"
        b"--b1\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="policy.pdf"\r\n\r\n'
        + attachment
        + b"--b1--\r\n"
    )


def _instance(host: DevhostProcess, instance_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{host.base_url}/runtime/webhooks/durabletask/instances/{quote(instance_id, safe='')}",
        timeout=10,
    )
    return dict(response.json()) if response.status_code == 200 else {}


def _audit(customer: Customer, correlation_id: str) -> list[dict[str, Any]]:
    page = customer.api.get(
        "/v1/audit/events",
        headers=customer.manager,
        params={"correlation_id": correlation_id, "limit": 1000},
    )
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


def _items(customer: Customer, path: str, **params: str) -> list[dict[str, Any]]:
    page = customer.api.get(path, headers=customer.revops, params={"limit": "200", **params})
    assert page.status_code == 200, page.text
    items: list[dict[str, Any]] = page.json()["items"]
    return items


def test_each_reply_class_has_its_outcome(host: DevhostProcess, database: DatabaseUrls) -> None:
    corpus = {
        "ooo": _corpus(OUT_OF_OFFICE),
        "hard": _corpus(HARD_BOUNCE),
        "soft": _corpus(SOFT_BOUNCE),
        "complaint": _corpus(COMPLAINT),
    }
    customer = onboard(host, database, "replies")
    api, revops, manager = customer.api, customer.revops, customer.manager
    mailbox_id = customer.mailbox("sam@vendor.example")
    imported = customer.import_csv(
        b"email,first_name,company,website\n"
        + b"".join(
            f"{_address(case)},{case.title()},{case.title()} Co,{case}-co.example\n".encode()
            for case in PROSPECTS
        )
    )
    assert imported["imported"] == len(PROSPECTS), imported
    campaign_id = customer.campaign("Replies", [mailbox_id], SEQUENCE)
    assert api.post(f"/v1/campaigns/{campaign_id}/start", headers=revops).status_code == 202

    def first_touches_approved() -> bool:
        customer.approve_pending()
        return len(customer.sent(mailbox_id)) >= len(PROSPECTS)

    wait_until(first_touches_approved, host, timeout=120, what="every first touch sent")
    touches = {str(m["recipients"][0]): m for m in customer.sent(mailbox_id)}
    assert sorted(touches) == sorted(_address(case) for case in PROSPECTS)
    prospect_ids = {
        p["email"]: p["id"] for p in _items(customer, "/v1/prospects") if p["email"] in touches
    }
    journey = {case: f"{campaign_id}:{prospect_ids[_address(case)]}" for case in PROSPECTS}

    inbound: dict[str, list[str]] = {case: [] for case in PROSPECTS}

    def arrive(case: str, raw: bytes) -> dict[str, Any]:
        injected = api.post(
            f"/v1/sandbox/mailboxes/{mailbox_id}/inbound",
            content=raw,
            headers={**revops, "content-type": "message/rfc822"},
        )
        assert injected.status_code == 202, injected.text
        stored: dict[str, Any] = injected.json()["inbound"]
        assert stored["intent_id"], (case, stored)
        assert stored["prospect_id"] == prospect_ids[_address(case)], (case, stored)
        inbound[case].append(str(stored["id"]))
        return stored

    for case, text in PROSPECTS.items():
        touch = touches[_address(case)]
        if case == "large":
            assert text is not None
            raw = _with_attachment(_human_reply(_address(case), touch, text), LARGE_ATTACHMENT)
            assert len(raw) > 10 * 1024 * 1024
            stored = arrive(case, raw)
            assert (stored["size_bytes"], str(stored["reason"])[:9]) == (len(raw), "too_large")
        elif text is not None:
            arrive(case, _human_reply(_address(case), touch, text))
        elif case == "loop":
            # Their responder answering again and again (our touch, then its own replies'
            # echoes): automatic replies past the third to one touch are a loop.
            for _ in range(LOOPING_AUTO_REPLIES):
                arrive(case, _rethreaded(corpus["ooo"], touch["message_id"], reported=False))
        else:
            reported = case != "ooo"
            arrive(case, _rethreaded(corpus[case], touch["message_id"], reported=reported))

    def flow(inbound_id: str) -> dict[str, Any] | None:
        status = _instance(host, f"deal:{inbound_id}")
        return status if status.get("runtimeStatus") == "Completed" else None

    # Medium confidence: reply_to_deal asks "Create Deal?" and waits for a manager.
    def deal_approval() -> list[dict[str, Any]]:
        pending = _items(customer, "/v1/approvals", status="pending")
        return [a for a in pending if a["action_kind"] == "deal"]

    (approval,) = wait_until(deal_approval, host, what="the 'Create Deal?' approval")
    assert approval["prospect_id"] == prospect_ids[_address("warm")]
    decided = api.post(f"/v1/approvals/{approval['id']}/approve", headers=manager, json={})
    assert decided.status_code == 200, decided.text

    def output(case: str, inbound_id: str) -> dict[str, Any]:
        done = wait_until(lambda: flow(inbound_id), host, what=f"reply_to_deal of {case}")
        result: dict[str, Any] = done["output"]
        return result

    outputs = {case: [output(case, i) for i in ids] for case, ids in inbound.items()}
    assert [(o["status"], o["outcome"]) for o in outputs["hot"]] == [("created", "auto")]
    assert [(o["status"], o["outcome"]) for o in outputs["warm"]] == [("created", "approval")]
    for case in set(PROSPECTS) - {"hot", "warm"}:
        assert [o["status"] for o in outputs[case]] == ["no_deal"] * len(inbound[case]), case

    def journeys_ended() -> dict[str, int] | None:
        members = customer.members(campaign_id)
        live = members.get("running", 0) + members.get("awaiting_approval", 0)
        return members if live == 0 and sum(members.values()) == len(PROSPECTS) else None

    members = wait_until(journeys_ended, host, what="every journey to end")
    # A person answering is "replied"; automatic replies, bounces, complaints and
    # unsubscribes stop the sequence as "stopped".
    assert members == {"replied": len(HUMAN), "stopped": len(PROSPECTS) - len(HUMAN)}, members

    # Classification, as the API reports it.
    replies = {
        case: sorted(
            _items(customer, "/v1/replies", prospect_id=prospect_ids[_address(case)]),
            key=lambda r: datetime.fromisoformat(str(r["created_at"])),
        )
        for case in PROSPECTS
    }
    labels = {
        case: [(r["status"], r["label"], r["sub_label"]) for r in rows]
        for case, rows in replies.items()
    }
    assert labels["hot"] == [("classified", "positive", "meeting_request")]
    assert labels["warm"] == [("classified", "positive", "interested")]
    assert labels["neutral"] == [("classified", "neutral", "question")]
    assert labels["objection"] == [("classified", "objection", "competitor")]
    assert labels["large"] == [("classified", "objection", "budget")]
    assert any(s.startswith("too-large") for s in replies["large"][0]["evidence"]["signals"])
    assert labels["unsubscribe"] == [("classified", "unsubscribe", None)]
    assert labels["ooo"] == [("classified", "ooo", "out_of_office")]
    assert labels["hard"] == [("classified", "bounce", "hard")]
    assert labels["soft"] == [("classified", "bounce", "soft")]
    assert labels["complaint"] == [("classified", "complaint", "abuse")]
    assert labels["loop"] == [("classified", "ooo", "out_of_office")] * 3 + [
        ("unclassifiable", "ooo", "out_of_office")
    ] * (LOOPING_AUTO_REPLIES - 3)
    assert all("loop" in str(r["reason"]) for r in replies["loop"][3:])
    assert replies["hot"][0]["confidence"] >= 0.85
    assert 0.65 <= replies["warm"][0]["confidence"] < 0.85
    assert "5.1.1" in replies["hard"][0]["evidence"]["status_codes"]
    for case, rows in replies.items():
        assert all(r["recommendation"] for r in rows), case

    # Intent events on positive replies only; deals on those alone.
    intent_events = _items(customer, "/v1/intent-events")
    assert sorted(e["prospect_id"] for e in intent_events) == sorted(
        prospect_ids[_address(case)] for case in ("hot", "warm")
    )
    deals = {d["prospect_id"]: d for d in _items(customer, "/v1/deals")}
    assert sorted(deals) == sorted(prospect_ids[_address(case)] for case in ("hot", "warm"))
    hot_deal = deals[prospect_ids[_address("hot")]]
    warm_deal = deals[prospect_ids[_address("warm")]]
    assert (hot_deal["status"], hot_deal["stage"], hot_deal["approval_id"]) == (
        "created",
        "POSITIVE_REPLY",
        None,
    )
    assert (warm_deal["status"], warm_deal["approval_id"]) == ("created", approval["id"])

    # Suppression: unsubscribe, hard bounce and complaint, at once; a soft bounce is not.
    suppressed = {(s["value"], s["reason"]) for s in _items(customer, "/v1/suppressions")}
    assert suppressed == {
        (_address("unsubscribe"), "unsubscribe"),
        (_address("hard"), "bounce"),
        (_address("complaint"), "complaint"),
    }

    # Both bounces and the complaint count toward the mailbox's health, over the sends made
    # by then (the first touches, and any meeting offer a positive reply led to).
    mailboxes = api.get("/v1/mailboxes", headers=revops).json()
    (mailbox,) = [m for m in mailboxes if m["id"] == mailbox_id]
    sample = mailbox["health_sample_size"]
    assert sample >= len(PROSPECTS), mailbox
    assert mailbox["bounce_rate"] == pytest.approx(2 / sample)
    assert mailbox["complaint_rate"] == pytest.approx(1 / sample)

    # The sequence sent nothing after any reply, and nothing but a positive reply is
    # answered by mail: one touch each for the rest, however many auto-replies came.
    sent = customer.sent(mailbox_id)
    assert not [m for m in sent if str(m["subject"]).startswith("Following up")]
    per_recipient = Counter(str(m["recipients"][0]) for m in sent)
    for case in set(PROSPECTS) - {"hot", "warm"}:
        assert per_recipient[_address(case)] == 1, (case, per_recipient)

    # Each prospect's story, in the audit log under its journey's correlation id.
    expected = {
        "hot": ({"INTENT_EVENT_CREATED", "DEAL_CREATED"}, "replied", "positive"),
        "warm": (
            {"INTENT_EVENT_CREATED", "APPROVAL_REQUESTED", "APPROVAL_GRANTED", "DEAL_CREATED"},
            "replied",
            "positive",
        ),
        "neutral": (set(), "replied", "neutral"),
        "objection": (set(), "replied", "objection"),
        "large": (set(), "replied", "objection"),
        "unsubscribe": ({"UNSUBSCRIBED"}, "stopped", "unsubscribe"),
        "ooo": (set(), "stopped", "ooo"),
        "hard": ({"SUPPRESSION_ADDED"}, "stopped", "bounce"),
        "soft": (set(), "stopped", "bounce"),
        "complaint": ({"SUPPRESSION_ADDED"}, "stopped", "complaint"),
        "loop": (set(), "stopped", "ooo"),
    }
    outcome_events = {
        "INTENT_EVENT_CREATED",
        "DEAL_CREATED",
        "DEAL_UPDATED",
        "DEAL_CREATION_BLOCKED",
        "UNSUBSCRIBED",
        "SUPPRESSION_ADDED",
    }
    for case, (effects, status, reason) in expected.items():
        events = _audit(customer, journey[case])
        types = [e["event_type"] for e in events]
        # A positive reply may be answered with a meeting offer, sent while this runs.
        touches_sent = types.count("SEND_SUCCEEDED")
        assert touches_sent >= 1 if case in {"hot", "warm"} else touches_sent == 1, (case, types)
        assert types.count("REPLY_RECEIVED") == len(inbound[case]), (case, types)
        classified = [e["event_json"] for e in events if e["event_type"] == "REPLY_CLASSIFIED"]
        assert [(c["status"], c["label"], c["sub_label"]) for c in classified] == labels[case]
        assert {t for t in types if t in outcome_events} == effects - {
            "APPROVAL_REQUESTED",
            "APPROVAL_GRANTED",
        }, (case, types)
        ended = [e["event_json"] for e in events if e["event_type"] == "JOURNEY_ENDED"]
        assert [(e["status"], e["reason"]) for e in ended] == [(status, reason)], (case, ended)
        # The story is in order: the policy's decisions on the touch (at draft and send
        # time), the touch, the reply, what the reply caused, the end.
        assert types[: types.index("SEND_SUCCEEDED")].count("POLICY_EVALUATED") >= 2, types
        assert types.index("SEND_SUCCEEDED") < types.index("REPLY_RECEIVED")
        assert types.index("REPLY_RECEIVED") < types.index("REPLY_CLASSIFIED")
        after_reply = types[types.index("REPLY_CLASSIFIED") :]
        assert effects <= set(after_reply), (case, types)
        assert "JOURNEY_ENDED" in after_reply, (case, types)

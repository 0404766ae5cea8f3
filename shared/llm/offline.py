"""The offline model: deterministic, evidence-grounded, no key and no network.

It is the embedded default and the model tests run against. It knows a fixed set of tasks
and answers each from the request's context alone, so the same input always gives the same
output; its answers go through the same schema validation as a hosted model's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from shared.llm.port import GenerationRequest, GenerationResult, ModelError, OutputT, Task, Usage

Answer = Callable[[dict[str, Any]], dict[str, Any]]
GREETINGS = ("hi ", "hi,", "hello", "hey ", "dear ")


def _approximate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def draft_email(context: dict[str, Any]) -> dict[str, Any]:
    """Subject and body from the step's rendered templates, plus one personalization line per
    usable fact, each citing the evidence it came from. Nothing is claimed without a fact."""
    facts: list[dict[str, Any]] = sorted(
        context.get("evidence", []),
        key=lambda fact: (-float(fact.get("confidence", 0)), fact["id"]),
    )
    first_name = context.get("prospect", {}).get("first_name") or "there"
    bullets = [
        {"text": fact["statement"], "evidence_ids": [fact["id"]]}
        for fact in facts[: int(context.get("max_personalization", 2))]
    ]
    opener = ""
    if bullets:
        statement = str(bullets[0]["text"])
        # Facts open with a name ("Acme raised…"), kept as written; only the pronoun of a fact
        # about a prospect without a first name is lowercased mid-sentence.
        if statement.startswith("They "):
            statement = "they " + statement.removeprefix("They ")
        opener = f"I noticed {statement}"
        opener = opener if opener.endswith(".") else opener + "."
    body = context["body"]
    if opener and "{{personalization}}" in body:
        body = body.replace("{{personalization}}", opener)
    elif opener:
        first_line, _, rest = body.partition("\n")
        if first_line.lower().startswith(GREETINGS):
            # The template greets already: the opener follows its greeting, not a second one.
            body = f"{first_line}\n\n{opener}\n{rest}"
        else:
            body = f"Hi {first_name},\n\n{opener}\n\n{body}"
    body = body.replace("{{personalization}}", "").strip()
    claims = [{"text": opener, "evidence_ids": bullets[0]["evidence_ids"]}] if opener else []
    return {
        "subject": context["subject"],
        "body": body,
        "bullets": bullets,
        "claims": claims,
        "cta": context.get("cta") or "Would a 20-minute call next week be useful?",
    }


def classify_reply(context: dict[str, Any]) -> dict[str, Any]:
    """The shipped reply classifier's answer for the reply's new text (shared/replies)."""
    from shared.replies.classifier import offline_model  # loads the model on first use only

    output = offline_model().output(str(context["text"]), str(context.get("subject", "")))
    return output.model_dump(mode="json")


TASKS: dict[Task, Answer] = {Task.DRAFT_EMAIL: draft_email, Task.CLASSIFY_REPLY: classify_reply}


class OfflineModel:
    name = "offline"
    model = "asep-offline-1"

    def generate(self, request: GenerationRequest[OutputT]) -> GenerationResult[OutputT]:
        answer = TASKS.get(request.task)
        if answer is None:
            raise ModelError(f"the offline model cannot do {request.task}")
        try:
            raw = answer(request.context)
            output = request.output_schema.model_validate(raw)
        except (KeyError, ValidationError) as exc:
            raise ModelError(f"offline {request.task} failed: {exc}") from exc
        text_in = request.instructions + repr(request.context)
        return GenerationResult(
            output=output,
            provider=self.name,
            model=self.model,
            usage=Usage(
                input_tokens=_approximate_tokens(text_in),
                output_tokens=_approximate_tokens(output.model_dump_json()),
            ),
        )

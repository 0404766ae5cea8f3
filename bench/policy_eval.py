"""Policy evaluation latency: the default pack in process (Rust CEL via
`common-expression-language`), beside the same rules on the pure-Python `cel-python` engine.
Prints JSON.

    .venv/bin/python bench/policy_eval.py [--rounds 5000] [--python-rounds 200] [--seed 7]

A measured unit is `evaluate(default_pack(), input)`: building the CEL activation, every
rule, the combination into a Decision with its trace, and the RFC 8785 input hash. Inputs
are a seeded mix of sends, drafts and deal decisions. The cel-python column times the same
rule expressions on the same inputs (activation conversion included) and checks that both
engines match the same rules.

Other measurements join through `run(args) -> dict`: e.g. gated decisions/s including the
counter reservation adds its own key to the returned dict (see `in_process_latency` and
`latency_summary` for reuse).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import celpy
from celpy.adapter import json_to_cel

from shared.policy.model import CompiledPack, evaluate, matched_rules
from shared.policy.packs import default_pack
from shared.policy.schemas import PolicyInput

DOMAINS = ("acme.com", "initech.com", "eu.acme.com", "agency.gov", "Army.MIL", "globex.io")
CLASSIFICATIONS = ("positive", "neutral", "objection", "unsubscribe", "ooo", "")


def policy_inputs(count: int, seed: int) -> list[PolicyInput]:
    """A seeded mix of realistic inputs (sends at both stages, drafts, deal decisions)."""
    rng = random.Random(seed)
    inputs = []
    for _ in range(count):
        kind = rng.choice(("send", "send", "send", "draft", "deal_create"))
        domain = rng.choice(DOMAINS)
        inputs.append(
            PolicyInput.model_validate(
                {
                    "action": {
                        "type": kind,
                        "stage": rng.choice(("draft", "send")) if kind == "send" else "draft",
                        "is_first_touch": rng.random() < 0.4,
                        "approval_mode": rng.choice(("once", "every_time")),
                        "step_template_approved": rng.random() < 0.5,
                    },
                    "tenant": {"kill_switch_active": rng.random() < 0.02},
                    "campaign": {
                        "mode": rng.choice(("active", "active", "pilot")),
                        "allowed_domains": ["acme.com", "globex.io"],
                        "canary_enabled": rng.random() < 0.2,
                    },
                    "mailbox": {
                        "health_score": rng.uniform(0.3, 1.0),
                        "bounce_rate": rng.uniform(0, 0.06),
                        "new_recipients_today": rng.randint(0, 45),
                    },
                    "recipient": {
                        "email": f"jo@{domain}",
                        "domain": domain,
                        "tld": domain.rsplit(".", 1)[-1],
                        "previously_contacted": rng.random() < 0.5,
                        "suppressed": rng.random() < 0.05,
                    },
                    "content": {
                        "pii_types": rng.choice(([], [], ["phone"], ["card"])),
                        "unresolved_variables": rng.choice(([], [], [], ["first_name"])),
                    },
                    "evidence": {"factual_claims": 2, "claims_without_evidence": rng.randint(0, 1)},
                    "reply": {
                        "classification": rng.choice(CLASSIFICATIONS),
                        "confidence": round(rng.random(), 3),
                    },
                    "deal": {"source": rng.choice(("reply", "meeting", ""))},
                }
            )
        )
    return inputs


def latency_summary(samples_seconds: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples_seconds)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1e6

    return {
        "n": len(ordered),
        "mean_us": round(statistics.fmean(ordered) * 1e6, 1),
        "p50_us": round(at(0.50), 1),
        "p95_us": round(at(0.95), 1),
        "p99_us": round(at(0.99), 1),
        "max_us": round(ordered[-1] * 1e6, 1),
    }


def _timed(calls: Sequence[Callable[[], object]]) -> list[float]:
    samples = []
    gc.collect()
    for call in calls:
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def in_process_latency(pack: CompiledPack, inputs: Sequence[PolicyInput]) -> dict[str, float]:
    for policy in inputs[:200]:  # warm-up
        evaluate(pack, policy)
    return latency_summary(_timed([partial(evaluate, pack, policy) for policy in inputs]))


class CelPythonPack:
    """The same rules compiled by cel-python, evaluated rule by rule on the same activation."""

    def __init__(self, pack: CompiledPack) -> None:
        environment = celpy.Environment()
        self.rules = [
            (compiled.rule.id, environment.program(environment.compile(compiled.rule.when)))
            for compiled in pack.rules
        ]

    def matched(self, policy: PolicyInput) -> list[str]:
        activation = {name: json_to_cel(value) for name, value in policy.activation().items()}
        return [rule_id for rule_id, program in self.rules if program.evaluate(activation)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    pack = default_pack()
    inputs = policy_inputs(args.rounds, args.seed)
    rust = in_process_latency(pack, inputs)
    python_pack = CelPythonPack(pack)
    python_inputs = inputs[: args.python_rounds]
    disagreements = sum(
        python_pack.matched(policy) != matched_rules(evaluate(pack, policy))
        for policy in python_inputs
    )
    python = latency_summary(
        _timed([partial(python_pack.matched, policy) for policy in python_inputs])
    )
    result: dict[str, Any] = {
        "benchmark": "policy_eval",
        "pack": {"id": pack.pack_id, "version": pack.version, "rules": len(pack.rules)},
        "in_process_rust_cel": rust,
        "cel_python": python,
        "ratio_p50": round(python["p50_us"] / rust["p50_us"], 1),
        "ratio_p99": round(python["p99_us"] / rust["p99_us"], 1),
        "engines_disagree_on": disagreements,
        "goal_p99_us": 1000,
        "goal_met": rust["p99_us"] <= 1000,
    }
    if args.gated_seconds > 0:
        from gate_throughput import measure  # bench/ is this script's directory

        result["gated"] = measure(
            seconds=args.gated_seconds,
            processes=args.gated_processes,
            threads=args.gated_threads,
            tenants=args.gated_tenants,
            recipients=30,
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5000)
    parser.add_argument("--python-rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    # Gated decisions/s through check_send in PostgreSQL (bench/gate_throughput.py); 0 skips.
    parser.add_argument("--gated-seconds", type=float, default=0.0)
    parser.add_argument("--gated-processes", type=int, default=2)
    parser.add_argument("--gated-threads", type=int, default=4)
    parser.add_argument("--gated-tenants", type=int, default=8)
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()

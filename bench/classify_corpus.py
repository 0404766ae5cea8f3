"""Reply classification quality. Prints JSON.

    .venv/bin/python bench/classify_corpus.py [--sisimai ../shared/corpora/sisimai]

- sisimai (real DSNs, ARF reports, auto-replies; labels from sisimai's own test tables):
  per-class precision/recall for bounce (with hard/soft agreement), complaint and
  out-of-office, and the number of bounces classified positive (goal 0). Skipped, with a
  note, when the corpus is absent.
- Our sales-reply evaluation set (shared/replies/data/eval.txt, written before training and
  never trained on): accuracy, per-class precision/recall/F1, macro-F1, the confusion
  matrix and expected calibration error of the confidence.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.replies.classifier import offline_model  # noqa: E402
from shared.replies.evaluation import evaluate_sales_replies, evaluate_sisimai  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sisimai", type=Path, default=REPO.parent / "shared/corpora/sisimai")
    args = parser.parse_args(argv)
    model = offline_model()
    report: dict[str, object] = {"classifier_version": f"detectors-1+{model.version}"}
    if (args.sisimai / "labels.json").exists():
        report["sisimai"] = evaluate_sisimai(args.sisimai, model)
    else:
        report["sisimai"] = {"skipped": f"no corpus at {args.sisimai}"}
    report["sales_replies"] = evaluate_sales_replies(model=model)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Measure intent accuracy on a labelled evaluation set.

Usage::

    python -m messaging.agent.evaluate [tests/messaging/agent/eval_set.jsonl] [--errors]

The file has one JSON object per line: ``{"text": "...", "intent": "billing"}``. Every
message is classified on its own, as the first message of a new conversation.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from messaging.agent.base import INTENTS
from messaging.agent.rules import RuleBasedAgent

DEFAULT_EVAL_SET = Path("tests/messaging/agent/eval_set.jsonl")


@dataclass(frozen=True)
class Miss:
    """One misclassified example."""

    text: str
    expected: str
    predicted: str
    confidence: float


@dataclass(frozen=True)
class EvalReport:
    """Overall and per-intent accuracy of one evaluation run."""

    total: int
    correct: int
    per_intent: dict[str, tuple[int, int]]  # intent → (correct, total)
    misses: list[Miss] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def intent_accuracy(self, intent: str) -> float:
        correct, total = self.per_intent.get(intent, (0, 0))
        return correct / total if total else 0.0

    def format(self, *, errors: bool = False) -> str:
        lines = [f"overall  {self.accuracy:6.1%}  ({self.correct}/{self.total})"]
        for intent in INTENTS:
            correct, total = self.per_intent.get(intent, (0, 0))
            if total:
                lines.append(f"{intent:14} {correct / total:6.1%}  ({correct}/{total})")
        if errors:
            lines.append("")
            lines.extend(
                f"{m.expected:>13} → {m.predicted:<13} {m.confidence:.2f}  {m.text}"
                for m in self.misses
            )
        return "\n".join(lines)


def load_eval_set(path: str | Path) -> list[tuple[str, str]]:
    """Read ``(text, intent)`` pairs, rejecting labels outside ``INTENTS``."""
    examples: list[tuple[str, str]] = []
    with Path(path).open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue  # blank lines and '#' comments (a set's header says how it was made)
            row = json.loads(line)
            if row["intent"] not in INTENTS:
                raise ValueError(f"{path}:{number}: unknown intent {row['intent']!r}")
            examples.append((row["text"], row["intent"]))
    return examples


def evaluate(path: str | Path, agent: RuleBasedAgent | None = None) -> EvalReport:
    """Classify every example in ``path`` and compare with its label."""
    agent = agent or RuleBasedAgent(max_turns=1_000_000)
    correct: Counter[str] = Counter()
    total: Counter[str] = Counter()
    misses: list[Miss] = []
    for text, expected in load_eval_set(path):
        result = agent.classify(text)
        total[expected] += 1
        if result.intent == expected:
            correct[expected] += 1
        else:
            misses.append(Miss(text, expected, result.intent, result.confidence))
    return EvalReport(
        total=sum(total.values()),
        correct=sum(correct.values()),
        per_intent={intent: (correct[intent], total[intent]) for intent in total},
        misses=misses,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT_EVAL_SET))
    parser.add_argument("--errors", action="store_true", help="list misclassified messages")
    args = parser.parse_args(argv)
    sys.stdout.write(evaluate(args.path).format(errors=args.errors) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

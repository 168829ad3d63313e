"""Measure the agent on labelled evaluation sets: intent accuracy, a confusion matrix, the
requests for a human it failed to hand over and the hand-offs nobody asked for.

Usage::

    python -m messaging.agent.evaluate [FILE ...] [--errors]

With no file, the held-out set (tests/messaging/agent/heldout.jsonl). A file has one JSON
object per line, ``{"text": "...", "intent": "billing"}``; lines starting with ``#`` are
comments. Every message is answered on its own, as the first message of a new conversation,
by the agent itself (classification, signals and the escalation policy), so the figures are
what a customer's first message gets:

- **accuracy**: the reply's intent equals the label;
- **human-request recall**: messages labelled ``human_request`` that were escalated;
- **false hand-offs**: escalated messages labelled neither ``human_request`` nor
  ``complaint`` (nobody asked for a human and nobody complained, yet an operator is paged).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from messaging.agent.base import INTENTS, ConversationSnapshot
from messaging.agent.rules import RuleBasedAgent

EVAL_DIR = Path(__file__).resolve().parent.parent.parent / "tests" / "messaging" / "agent"
DEFAULT_EVAL_SET = EVAL_DIR / "heldout.jsonl"
# Labels whose escalation on a first message is expected or acceptable.
HANDOFF_LABELS = frozenset({"human_request", "complaint"})
FIRST_MESSAGE = ConversationSnapshot(id=None, customer_id=0, turn_count=0, recent_messages=())


@dataclass(frozen=True)
class Miss:
    """One misclassified example."""

    text: str
    expected: str
    predicted: str
    confidence: float


@dataclass(frozen=True)
class EvalReport:
    """Accuracy, confusion and hand-off figures of one evaluation run."""

    total: int
    correct: int
    per_intent: dict[str, tuple[int, int]]  # intent → (correct, total)
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)  # (label, predicted)
    misses: list[Miss] = field(default_factory=list)
    human_requests: int = 0
    human_requests_escalated: int = 0
    missed_human_requests: list[str] = field(default_factory=list)
    false_handoffs: list[tuple[str, str]] = field(default_factory=list)  # (label, text)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def human_request_recall(self) -> float:
        return self.human_requests_escalated / self.human_requests if self.human_requests else 1.0

    def intent_accuracy(self, intent: str) -> float:
        correct, total = self.per_intent.get(intent, (0, 0))
        return correct / total if total else 0.0

    def format(self, *, errors: bool = False) -> str:
        lines = [f"overall  {self.accuracy:6.1%}  ({self.correct}/{self.total})"]
        for intent in INTENTS:
            correct, total = self.per_intent.get(intent, (0, 0))
            if total:
                lines.append(f"{intent:14} {correct / total:6.1%}  ({correct}/{total})")
        lines.append("")
        lines.append(
            f"human-request recall  {self.human_request_recall:6.1%}  "
            f"({self.human_requests_escalated}/{self.human_requests} escalated)"
        )
        lines.append(
            f"false hand-offs       {len(self.false_handoffs)}  "
            f"(of {self.total - self._handoff_labelled()} messages that are neither a "
            "human request nor a complaint)"
        )
        lines.append("")
        lines.append("confusion (rows: label, columns: predicted)")
        short = [intent[:5] for intent in INTENTS]
        lines.append(f"{'':14}" + "".join(f"{s:>6}" for s in short))
        for label in INTENTS:
            if not self.per_intent.get(label):
                continue
            cells = "".join(f"{self.confusion.get((label, p), 0) or '.':>6}" for p in INTENTS)
            lines.append(f"{label:14}{cells}")
        for text in self.missed_human_requests:
            lines.append(f"NOT ESCALATED human_request: {text}")
        for label, text in self.false_handoffs:
            lines.append(f"FALSE HAND-OFF ({label}): {text}")
        if errors and self.misses:
            lines.append("")
            lines.extend(
                f"{m.expected:>13} → {m.predicted:<13} {m.confidence:.2f}  {m.text}"
                for m in self.misses
            )
        return "\n".join(lines)

    def _handoff_labelled(self) -> int:
        return sum(self.per_intent.get(label, (0, 0))[1] for label in HANDOFF_LABELS)


def load_eval_set(path: str | Path) -> list[tuple[str, str]]:
    """Read ``(text, intent)`` pairs, rejecting labels outside ``INTENTS``."""
    import json

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
    """Answer every example of ``path`` as a first message and compare with its label."""
    agent = agent or RuleBasedAgent(max_turns=1_000_000)
    correct: Counter[str] = Counter()
    total: Counter[str] = Counter()
    confusion: Counter[tuple[str, str]] = Counter()
    misses: list[Miss] = []
    missed_human: list[str] = []
    false_handoffs: list[tuple[str, str]] = []
    human_total = human_escalated = 0
    for text, expected in load_eval_set(path):
        reply = agent.respond_now(FIRST_MESSAGE, text)
        total[expected] += 1
        confusion[(expected, reply.intent)] += 1
        if reply.intent == expected:
            correct[expected] += 1
        else:
            misses.append(Miss(text, expected, reply.intent, reply.confidence))
        if expected == "human_request":
            human_total += 1
            if reply.escalate:
                human_escalated += 1
            else:
                missed_human.append(text)
        elif reply.escalate and expected not in HANDOFF_LABELS:
            false_handoffs.append((expected, text))
    return EvalReport(
        total=sum(total.values()),
        correct=sum(correct.values()),
        per_intent={intent: (correct[intent], total[intent]) for intent in total},
        confusion=dict(confusion),
        misses=misses,
        human_requests=human_total,
        human_requests_escalated=human_escalated,
        missed_human_requests=missed_human,
        false_handoffs=false_handoffs,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=[str(DEFAULT_EVAL_SET)])
    parser.add_argument("--errors", action="store_true", help="list misclassified messages")
    args = parser.parse_args(argv)
    agent = RuleBasedAgent(max_turns=1_000_000)
    for index, path in enumerate(args.paths):
        if len(args.paths) > 1:
            sys.stdout.write(("\n" if index else "") + f"== {path}\n")
        sys.stdout.write(evaluate(path, agent).format(errors=args.errors) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

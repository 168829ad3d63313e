"""Intent accuracy on the labelled evaluation sets (see messaging/agent/evaluate.py)."""

from pathlib import Path

import pytest

from messaging.agent.base import INTENTS
from messaging.agent.evaluate import evaluate, load_eval_set, main

HERE = Path(__file__).parent
EVAL_SET = HERE / "eval_set.jsonl"
# Written after the knowledge base, as a check that it generalises (see the report in the
# agent's README section); not used to tune phrases.
HOLDOUT_SET = HERE / "eval_holdout.jsonl"
MIN_ACCURACY = 0.85


@pytest.mark.parametrize("path", [EVAL_SET, HOLDOUT_SET], ids=["eval_set", "holdout"])
def test_accuracy_meets_the_bar(path, record_property):
    report = evaluate(path)

    print(report.format(errors=True))  # shown with -s / on failure
    record_property("accuracy", round(report.accuracy, 4))
    for intent in INTENTS:
        record_property(f"accuracy_{intent}", round(report.intent_accuracy(intent), 4))
    assert report.accuracy >= MIN_ACCURACY


def test_eval_set_covers_every_intent():
    examples = load_eval_set(EVAL_SET)
    counts = {intent: sum(label == intent for _, label in examples) for intent in INTENTS}

    assert len(examples) >= 150
    assert min(counts.values()) >= 15
    assert len({text for text, _ in examples}) == len(examples)  # no duplicates


def test_cli_prints_overall_and_per_intent_accuracy(capsys):
    assert main([str(EVAL_SET)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("overall")
    assert [line.split()[0] for line in lines[1:]] == list(INTENTS)

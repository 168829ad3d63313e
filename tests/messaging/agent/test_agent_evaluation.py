"""The agent measured on labelled sets (messaging/agent/evaluate.py): CI fails when accuracy on
the held-out set drops, when any request for a human in any set is not handed over, or when a
message nobody asked a human for is handed over."""

from pathlib import Path

import pytest

from messaging.agent.base import INTENTS
from messaging.agent.evaluate import DEFAULT_EVAL_SET, evaluate, load_eval_set, main
from messaging.agent.training.corpus import (
    DECONTAMINATE_MIN_WORDS,
    TRAIN_PATH,
    comparable,
    load_jsonl,
)

HERE = Path(__file__).parent
# Written before the classifier and never trained or tuned on (its header says so).
HELDOUT_SET = HERE / "heldout.jsonl"
# Development sets: the project's first two sets and one written while tuning.
DEV_SETS = [HERE / "eval_set.jsonl", HERE / "eval_holdout.jsonl", HERE / "eval_dev.jsonl"]
MIN_HELDOUT_ACCURACY = 0.95
MIN_DEV_ACCURACY = 0.95
# False hand-offs allowed on the held-out set (233 messages that ask for nobody): the product's
# bar is at most 2 in 240.
MAX_HELDOUT_FALSE_HANDOFFS = 1


@pytest.fixture(scope="module")
def heldout_report():
    return evaluate(HELDOUT_SET)


def test_heldout_accuracy_meets_the_bar(heldout_report, record_property):
    print(heldout_report.format(errors=True))  # shown with -s / on failure
    record_property("accuracy", round(heldout_report.accuracy, 4))
    for intent in INTENTS:
        record_property(f"accuracy_{intent}", round(heldout_report.intent_accuracy(intent), 4))

    assert heldout_report.accuracy >= MIN_HELDOUT_ACCURACY
    assert min(heldout_report.intent_accuracy(intent) for intent in INTENTS) >= 0.85


def test_heldout_hands_over_every_human_request_and_nothing_else(heldout_report):
    assert heldout_report.human_requests == 36
    assert heldout_report.missed_human_requests == []
    assert len(heldout_report.false_handoffs) <= MAX_HELDOUT_FALSE_HANDOFFS


@pytest.mark.parametrize("path", DEV_SETS, ids=lambda p: p.stem)
def test_development_sets(path):
    report = evaluate(path)

    print(report.format(errors=True))
    assert report.accuracy >= MIN_DEV_ACCURACY
    assert report.human_requests > 0
    assert report.missed_human_requests == []
    assert report.false_handoffs == []


def test_sets_cover_every_intent_without_duplicates():
    for path in [HELDOUT_SET, *DEV_SETS]:
        examples = load_eval_set(path)
        counts = {intent: sum(label == intent for _, label in examples) for intent in INTENTS}

        assert min(counts.values()) >= 10, path
        assert len({text for text, _ in examples}) == len(examples), path


def test_no_evaluation_sentence_is_in_the_training_file():
    # Sentences of three words or more; shorter messages ("gm", "merci") are vocabulary.
    trained = {comparable(text) for text, _ in load_jsonl(TRAIN_PATH)}

    for path in [HELDOUT_SET, *DEV_SETS]:
        leaked = [
            text
            for text, _ in load_eval_set(path)
            if len(comparable(text).split()) >= DECONTAMINATE_MIN_WORDS
            and comparable(text) in trained
        ]
        assert leaked == [], path


def test_the_heldout_set_says_it_was_written_before_tuning():
    header = HELDOUT_SET.read_text(encoding="utf-8").splitlines()[0]

    assert header.startswith("# HELD-OUT SET")
    assert DEFAULT_EVAL_SET == HELDOUT_SET


def test_counts_false_handoffs_and_missed_human_requests(tmp_path):
    labelled = tmp_path / "set.jsonl"
    labelled.write_text(
        "# a comment line\n"
        '{"text": "let me talk to a person", "intent": "human_request"}\n'
        '{"text": "what is the weather like", "intent": "human_request"}\n'
        '{"text": "get me a human now", "intent": "billing"}\n'
        '{"text": "hi there", "intent": "greeting"}\n',
        encoding="utf-8",
    )

    report = evaluate(labelled)

    assert (report.total, report.correct) == (4, 2)
    assert report.human_requests == 2
    assert report.human_requests_escalated == 1
    assert report.missed_human_requests == ["what is the weather like"]
    assert report.false_handoffs == [("billing", "get me a human now")]
    assert report.confusion[("human_request", "unknown")] == 1
    assert report.confusion[("billing", "human_request")] == 1


def test_cli_prints_accuracy_confusion_recall_and_false_handoffs(capsys, tmp_path):
    labelled = tmp_path / "set.jsonl"
    labelled.write_text(
        '{"text": "let me talk to a person", "intent": "human_request"}\n'
        '{"text": "get me a human now", "intent": "billing"}\n',
        encoding="utf-8",
    )

    assert main([str(labelled)]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == "overall   50.0%  (1/2)"
    assert out[1] == "billing          0.0%  (0/1)"
    assert out[2] == "human_request  100.0%  (1/1)"
    assert "human-request recall  100.0%  (1/1 escalated)" in out
    assert (
        "false hand-offs       1  (of 1 messages that are neither a human request nor a complaint)"
        in out
    )
    assert "confusion (rows: label, columns: predicted)" in out
    assert "FALSE HAND-OFF (billing): get me a human now" in out
    header = out[out.index("confusion (rows: label, columns: predicted)") + 1]
    assert header.split() == [intent[:5] for intent in INTENTS]


def test_cli_defaults_to_the_heldout_set(capsys):
    assert main([]) == 0

    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("overall")
    assert first.endswith("/301)")

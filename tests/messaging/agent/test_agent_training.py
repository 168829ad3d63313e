"""The committed training file and model are what the committed code makes, and serving's
plain-Python arithmetic is scikit-learn's."""

import json
import math
from pathlib import Path

import pytest

from messaging.agent.classifier import MODEL_PATH, IntentModel, features, load_model, tokens
from messaging.agent.evaluate import load_eval_set
from messaging.agent.training import corpus

HERE = Path(__file__).parent
EVAL_FILES = sorted(HERE.glob("*.jsonl"))


def test_training_file_is_what_the_generator_writes():
    # Regenerated with `python -m messaging.agent.training.corpus`; never edited by hand.
    assert corpus.TRAIN_PATH.read_text(encoding="utf-8") == corpus.render(corpus.build())


def test_training_file_is_large_and_covers_every_intent():
    rows = corpus.load_jsonl(corpus.TRAIN_PATH, with_topic=True)
    counts: dict[str, int] = {}
    for _, label in rows:
        counts[label] = counts.get(label, 0) + 1

    assert len(rows) >= 5000
    assert min(counts.values()) >= 200
    assert set(counts) == {*load_model().intents}


def test_generation_is_seeded():
    first = list(corpus.generate())

    assert first == list(corpus.generate())
    assert len(first) > 4000


def test_features_are_words_pairs_character_ngrams_and_length():
    found = features("Can't login!")

    assert tokens("Can't login!") == ["cant", "login", "!"]
    assert found["w:cant"] == 1
    assert found["b:cant login"] == 1
    assert found["b:login !"] == 1
    assert found["c: lo"] == 1  # padded: the start of a word differs from its middle
    assert found["c:gin "] == 1
    assert found["len:2-3"] == 1
    assert "c: ! " not in found


def test_long_messages_are_classified_on_their_start():
    start = "I was charged twice for my subscription. "
    assert features(start + "x" * 3000) == features(start + "y" * 3000)


@pytest.mark.slow
def test_committed_model_is_what_training_writes_and_serving_matches_scikit_learn():
    pytest.importorskip("sklearn")
    from messaging.agent.training import train

    examples = corpus.load_jsonl(corpus.TRAIN_PATH, with_topic=True)
    parts = train.fit(examples)
    retrained = train.render(parts)
    committed = MODEL_PATH.read_text(encoding="utf-8")

    # Same features, intents and (to the stored precision) weights as a fresh training run.
    fresh, stored = json.loads(retrained), json.loads(committed)
    assert fresh["intents"] == stored["intents"]
    assert fresh["features"].keys() == stored["features"].keys()
    drift = max(
        abs(a - b)
        for name, row in fresh["features"].items()
        for a, b in zip(row, stored["features"][name], strict=True)
    )
    # One rounding step of the stored 4 decimals: floating-point noise of another BLAS build
    # may move a last digit, a changed corpus or training code moves far more.
    assert drift <= 2e-4

    # The plain-Python model (unrounded weights) gives scikit-learn's own probabilities.
    exact = IntentModel(
        {
            "format": 1,
            "intents": parts["intents"],
            "intercepts": parts["intercepts"],
            "features": parts["features_rows"],
        }
    )
    vectoriser, tfidf, head, kept = parts["pipeline"]
    texts = [text for path in EVAL_FILES for text, _ in load_eval_set(path)]
    rows = [{f: n for f, n in features(text).items() if f in kept} for text in texts]
    expected = head.predict_proba(tfidf.transform(vectoriser.transform(rows)))
    for text, probabilities in zip(texts, expected, strict=True):
        scores, _ = exact.scores(text)
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        ours = [e / sum(exps) for e in exps]
        assert ours == pytest.approx(list(probabilities), abs=1e-9), text

"""The committed training file and model are what the committed code makes, and serving's
plain-Python arithmetic is scikit-learn's."""

import json
import math
from pathlib import Path

import pytest

from messaging.agent.classifier import (
    MODEL_PATH,
    PART_CACHE_SIZE,
    IntentModel,
    features,
    load_model,
    tokens,
)
from messaging.agent.evaluate import load_eval_set
from messaging.agent.training import corpus

HERE = Path(__file__).parent
EVAL_FILES = sorted(HERE.glob("*.jsonl"))

# Messages whose features are found in more than one token or pair, which the model's
# per-part sums must count once with their total count: repeated words and pairs, n-grams
# common to two words, a word inside another, emoji and symbols said twice, a shouted repeat,
# nothing the model knows, nothing at all, and a message cut at the classifier's limit.
SHARED_FEATURE_TEXTS = [
    "no no no no",
    "very very very angry!!! NOW",
    "pass password passport passed",
    "banana bananas nana",
    "refund refund please refund",
    "thanks thanks!! ?? ??",
    "😡😡 refund 😡",
    "I'm I'm can't cant",
    "ss sss ssss sssss",
    "login log in logging login",
    "qzxj vbnm",
    "",
    "?!",
    "reset my password " * 80,
]


def _tfidf_scores(model: IntentModel, counts: dict[str, int]) -> tuple[list[float], int]:
    """The definition the model's scores must meet: each known feature's sublinear TF-IDF
    value, the vector L2-normalised, times the weights, plus the intercepts."""
    weights = model.weights
    values = {f: (1.0 + math.log(n)) * weights[f][0] for f, n in counts.items() if f in weights}
    norm = math.sqrt(sum(v * v for v in values.values())) or 1.0
    totals = [
        sum(v * model.weights[f][1][k] for f, v in values.items()) / norm
        for k in range(len(model.intents))
    ]
    return [t + b for t, b in zip(totals, model.intercepts, strict=True)], len(values)


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


def test_scores_are_the_tfidf_of_every_feature_of_the_message():
    # The model sums its features per token and pair and corrects the features two of them
    # share; the total must be the one over the message's features as training counts them.
    model = load_model()
    texts = [text for path in EVAL_FILES for text, _ in load_eval_set(path)]
    for text in [*texts, *SHARED_FEATURE_TEXTS]:
        scores, known = model.scores(text)
        expected, expected_known = _tfidf_scores(model, features(text))

        assert known == expected_known, text
        assert scores == pytest.approx(expected, abs=1e-9), text


def test_the_sums_of_parts_seen_are_kept_in_bounded_caches():
    model = IntentModel(json.loads(MODEL_PATH.read_text(encoding="utf-8")))
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = [a + b + c for a in letters for b in letters for c in letters]  # 17 576 words

    for start in range(0, len(words), 50):
        model.scores(" ".join(words[start : start + 50]))

    assert model._token_part.cache_info().currsize == PART_CACHE_SIZE
    assert model._feature_part.cache_info().currsize == PART_CACHE_SIZE
    # What is still cached is still right.
    assert model.scores("abc abd")[0] == pytest.approx(
        _tfidf_scores(model, features("abc abd"))[0], abs=1e-9
    )


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
    texts += SHARED_FEATURE_TEXTS
    rows = [{f: n for f, n in features(text).items() if f in kept} for text in texts]
    expected = head.predict_proba(tfidf.transform(vectoriser.transform(rows)))
    for text, probabilities in zip(texts, expected, strict=True):
        scores, _ = exact.scores(text)
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        ours = [e / sum(exps) for e in exps]
        assert ours == pytest.approx(list(probabilities), abs=1e-9), text

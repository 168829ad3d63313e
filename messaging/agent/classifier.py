"""The learned intent classifier: word and character n-grams, TF-IDF, a linear head.

Trained with scikit-learn from ``data/train.jsonl`` (``python -m messaging.agent.training.train``)
and shipped as ``data/intent_model.json``: for every n-gram the model knows, its IDF and one
weight per intent. Answering needs none of scikit-learn, NumPy or SciPy -- :func:`features`
below is the one feature extractor both training and serving use, and :meth:`IntentModel.
probabilities` is the arithmetic of scikit-learn's ``TfidfTransformer(sublinear_tf=True)``
followed by ``LogisticRegression.predict_proba``, in plain Python (a test compares the two on
every evaluation message). So the model adds nothing to the runtime install and answers a
typical message in a fraction of a millisecond on one core.

Why character n-grams: they carry a typo ("pasword", "acount"), a word's other forms
("crashing"/"crashed") and unseen compounds to the features of the word the customer meant,
which a phrase list only does through hand-made tables.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MODEL_PATH = Path(__file__).with_name("data") / "intent_model.json"
MODEL_FORMAT = 1

# The classifier reads at most this much of a message: intents show in the first sentences,
# and the cost of a message stays bounded (a 4,000-character message costs what 1,000 do).
MAX_CLASSIFIED_CHARS = 1000
# Longer "words" are pasted tokens, hashes or keyboard mashing: not features at all.
MAX_WORD_CHARS = 30
CHAR_NGRAM_SIZES = (2, 3, 4, 5)

_APOSTROPHES = re.compile(r"['’‘`´]")
# Words (letters and digits), and single symbols that carry meaning: ? ! and emoji.
_TOKEN = re.compile(r"[^\W_]+|[?!]|[^\w\s\x00-\x7f]")


def tokens(text: str) -> list[str]:
    """Lowercase words (apostrophes dropped: "can't" → "cant"), "?"/"!" and emoji."""
    text = unicodedata.normalize("NFKC", text[:MAX_CLASSIFIED_CHARS]).lower()
    return [t for t in _TOKEN.findall(_APOSTROPHES.sub("", text)) if len(t) <= MAX_WORD_CHARS]


def _length_bucket(word_count: int) -> str:
    if word_count <= 1:
        return "1"
    if word_count <= 3:
        return "2-3"
    if word_count <= 8:
        return "4-8"
    return "9+"


def features(text: str) -> dict[str, int]:
    """Counts of the message's features: words, word pairs, character n-grams of each word
    (padded with spaces, so "^ab" and "ab$" differ from "ab" inside a word), and its length.

    The same function builds the training matrix and the features of a live message.
    """
    toks = tokens(text)
    words = [t for t in toks if t[0].isalnum()]
    # Listed in first-seen order, then counted: the dict's order is the order the model sums
    # features in (IntentModel.scores), so it must not change.
    listed = ["w:" + tok for tok in toks]
    listed += [f"b:{first} {second}" for first, second in zip(toks, toks[1:], strict=False)]
    for word in words:
        if word.isalpha():
            listed += _char_ngrams(word)
    listed.append("len:" + _length_bucket(len(words)))
    # Counter counts in C and keeps the first-seen order (it is a dict).
    return Counter(listed)


@functools.lru_cache(maxsize=4096)
def _char_ngrams(word: str) -> tuple[str, ...]:
    """The character n-gram features of one word, in order. Cached: customers' words repeat
    from message to message, and building these strings was half of `features`' time."""
    padded = f" {word} "
    return tuple(
        "c:" + padded[i : i + n] for n in CHAR_NGRAM_SIZES for i in range(len(padded) - n + 1)
    )


# A class of the model that is not an intent: off-topic questions ("are aliens real?"). It
# counts as ``unknown``; its own probability tells the agent which answer to give.
OFF_TOPIC = "off_topic"


@dataclass(frozen=True)
class Prediction:
    """Probabilities of every intent for one message, best first (off-topic counted in
    ``unknown``), the off-topic share of it, and how many of the message's features the model
    knew (0: it has nothing to go on)."""

    ranked: tuple[tuple[str, float], ...]
    known_features: int
    off_topic: float = 0.0

    @property
    def intent(self) -> str:
        return self.ranked[0][0]

    @property
    def probability(self) -> float:
        return self.ranked[0][1]

    def probability_of(self, intent: str) -> float:
        return dict(self.ranked)[intent]


class IntentModel:
    """A trained linear model over :func:`features`: TF-IDF (sublinear tf, L2-normalised)
    then multinomial logistic regression."""

    def __init__(self, data: Mapping) -> None:
        if data.get("format") != MODEL_FORMAT:
            raise ValueError(f"intent model format {data.get('format')!r} is not {MODEL_FORMAT}")
        self.intents: tuple[str, ...] = tuple(data["intents"])
        self.intercepts: tuple[float, ...] = tuple(data["intercepts"])
        # feature → (idf, weight per intent)
        self.weights: dict[str, tuple[float, tuple[float, ...]]] = {
            feature: (row[0], tuple(row[1:])) for feature, row in data["features"].items()
        }
        if len(self.intercepts) != len(self.intents) or any(
            len(w) != len(self.intents) for _, w in self.weights.values()
        ):
            raise ValueError("intent model rows do not match its intents")
        # feature → (idf, idf², its row times its idf): when a feature occurs once, its value
        # is (1 + log 1) * idf = idf exactly, so its square and its contribution to every
        # intent are known in advance -- most features of a message occur once.
        self._once: dict[str, tuple[float, float, tuple[float, ...]]] = {
            feature: (idf, idf * idf, tuple(idf * w for w in row))
            for feature, (idf, row) in self.weights.items()
        }

    @classmethod
    def from_path(cls, path: str | Path) -> IntentModel:
        with Path(path).open(encoding="utf-8") as fh:
            return cls(json.load(fh))

    def scores(self, text: str) -> tuple[list[float], int]:
        """The linear scores of every intent, and how many features were known."""
        norm_sq = 0.0
        once = self._once
        contributions: list[Sequence[float]] = []  # value * row, one per known feature
        for feature, count in features(text).items():
            entry = once.get(feature)
            if entry is None:
                continue
            if count == 1:
                norm_sq += entry[1]
                contributions.append(entry[2])
            else:
                value = (1.0 + math.log(count)) * entry[0]
                norm_sq += value * value
                contributions.append([value * w for w in self.weights[feature][1]])
        # Each intent's total, summed by C loops over the columns instead of a Python loop per
        # feature and intent. On Python 3.11 sum() adds floats in order, 0.0 + c1 + c2 + ...,
        # as scikit-learn's dot product does; from 3.12 it compensates rounding, which moves
        # the last bits only (the scikit-learn test compares to 1e-9).
        totals = (
            [sum(column, 0.0) for column in zip(*contributions, strict=True)]
            if contributions
            else [0.0] * len(self.intents)
        )
        if norm_sq:
            norm = math.sqrt(norm_sq)
            totals = [t / norm for t in totals]
        return [t + b for t, b in zip(totals, self.intercepts, strict=True)], len(contributions)

    def probabilities(self, text: str) -> Prediction:
        """Softmax of :meth:`scores`: every intent's probability, best first."""
        scores, known = self.scores(text)
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        total = sum(exps)
        probabilities: dict[str, float] = {}
        for intent, e in zip(self.intents, exps, strict=True):
            probabilities[intent] = e / total
        off_topic = probabilities.pop(OFF_TOPIC, 0.0)
        if OFF_TOPIC in self.intents:
            probabilities["unknown"] = probabilities.get("unknown", 0.0) + off_topic
        ranked = sorted(probabilities.items(), key=lambda pair: -pair[1])
        return Prediction(ranked=tuple(ranked), known_features=known, off_topic=off_topic)


def serialise(
    *,
    intents: Sequence[str],
    intercepts: Sequence[float],
    features_rows: Mapping[str, Sequence[float]],
    about: str,
) -> str:
    """The model file's text: stable key order and rounding, so one training run always
    writes the same bytes and a diff of the file shows what changed."""
    head = {
        "format": MODEL_FORMAT,
        "about": about,
        "intents": list(intents),
        "intercepts": [round(float(b), 4) for b in intercepts],
    }
    # One feature a line: a retrained model's diff shows which n-grams moved.
    lines = [json.dumps(head, ensure_ascii=False)[:-1] + ', "features": {']
    rows = [
        json.dumps(feature, ensure_ascii=False)
        + ": "
        + json.dumps([round(float(v), 4) for v in features_rows[feature]])
        for feature in sorted(features_rows)
    ]
    lines.append(",\n".join(rows))
    lines.append("}}")
    return "\n".join(lines) + "\n"


@functools.cache
def load_model(path: str | Path = MODEL_PATH) -> IntentModel:
    """Load a model file once per process."""
    return IntentModel.from_path(path)

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
from itertools import chain
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

    The same function builds the training matrix; serving sums the same features grouped by
    token (:meth:`IntentModel.scores`), from the same two parts below.
    """
    toks = tokens(text)
    listed = [feature for tok in toks for feature in token_features(tok)]
    listed += message_features(toks)
    # Counter counts in C.
    return Counter(listed)


def token_features(token: str) -> tuple[str, ...]:
    """The features one token brings whatever surrounds it: the token itself and, for a word
    of letters, its character n-grams."""
    if token.isalpha():
        return ("w:" + token, *_char_ngrams(token))
    return ("w:" + token,)


def message_features(toks: Sequence[str]) -> list[str]:
    """The features of the tokens together: each pair of neighbours, and the length bucket
    (words counted, "?", "!" and emoji not)."""
    listed = [f"b:{first} {second}" for first, second in zip(toks, toks[1:], strict=False)]
    listed.append("len:" + _length_bucket(sum(1 for tok in toks if tok[0].isalnum())))
    return listed


@functools.lru_cache(maxsize=4096)
def _char_ngrams(word: str) -> tuple[str, ...]:
    """The character n-gram features of one word, in order. Cached: customers' words repeat
    from message to message, and building these strings was half of `features`' time."""
    padded = f" {word} "
    return tuple(
        "c:" + padded[i : i + n] for n in CHAR_NGRAM_SIZES for i in range(len(padded) - n + 1)
    )


# Parts of messages (tokens; word pairs) whose sums a model keeps, of each kind (about 1 KB
# a part).
PART_CACHE_SIZE = 16384


def _tfidf(count: int, idf: float) -> float:
    """A feature's value before normalisation: sublinear term frequency times its IDF."""
    return (1.0 + math.log(count)) * idf


@dataclass(frozen=True, slots=True)
class _Part:
    """Some of a message's features, taken as if they were the whole message: those the
    model knows, those among them counted more than once (with their counts), their values
    times the weights summed per intent, and the sum of their squared values."""

    known: frozenset[str]
    repeated: dict[str, int]
    vector: tuple[float, ...]
    norm_sq: float


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
        # feature → (idf, idf², its row times its idf): a feature that occurs once has the
        # value (1 + log 1) * idf = idf, so what it adds is known in advance -- most features
        # of a part occur once, and a part never seen before is summed from these.
        self._once: dict[str, tuple[float, float, tuple[float, ...]]] = {
            feature: (idf, idf * idf, tuple(idf * w for w in row))
            for feature, (idf, row) in self.weights.items()
        }
        # The parts of messages seen, by token and by feature of the tokens together (pairs,
        # length). Bounded, so a flood of made-up words cannot grow a serving process.
        self._token_part = functools.lru_cache(maxsize=PART_CACHE_SIZE)(
            lambda token: self._build_part(token_features(token))
        )
        self._feature_part = functools.lru_cache(maxsize=PART_CACHE_SIZE)(
            lambda feature: self._build_part((feature,))
        )

    @classmethod
    def from_path(cls, path: str | Path) -> IntentModel:
        with Path(path).open(encoding="utf-8") as fh:
            return cls(json.load(fh))

    def scores(self, text: str) -> tuple[list[float], int]:
        """The linear scores of every intent, and how many features were known.

        The arithmetic of :func:`features` → TF-IDF → the linear head, grouped in parts: each
        token's own features (:func:`token_features`) and each feature of the tokens together
        (:func:`message_features`) are summed once per distinct part and cached, so a message
        costs a few operations per word instead of per n-gram (~85 features for a six-word
        question), and reads a handful of cached sums instead of ~85 rows of an 18 000-row
        table (in a server, those rows were cache misses). A feature found in two parts (the
        n-gram "ss" in "pass" and "password", a word or a pair said twice) counts once, with
        its total count, as :func:`features` counts it: the sums are corrected for exactly
        those features (:meth:`_correct_shared`).
        """
        toks = tokens(text)
        parts = [self._token_part(tok) for tok in toks]
        parts += [self._feature_part(feature) for feature in message_features(toks)]
        vectors: list[Sequence[float]] = [part.vector for part in parts]
        norm_sq = sum(part.norm_sq for part in parts)
        known = frozenset().union(*(part.known for part in parts))
        if len(known) != sum(len(part.known) for part in parts):
            norm_sq += self._correct_shared(parts, vectors)
        # Each intent's total, summed by C loops over the columns.
        totals = [sum(column, 0.0) for column in zip(*vectors, strict=True)]
        if norm_sq > 0.0:
            norm = math.sqrt(norm_sq)
            totals = [t / norm for t in totals]
        return [t + b for t, b in zip(totals, self.intercepts, strict=True)], len(known)

    def _build_part(self, listed: Sequence[str]) -> _Part:
        """The known features among ``listed`` with their counts, and their TF-IDF values
        summed into one vector, as if they were the whole message."""
        once = self._once
        known: dict[str, int] = {}
        rows: list[Sequence[float]] = []
        norm_sq = 0.0
        for feature, count in Counter(listed).items():
            entry = once.get(feature)
            if entry is None:
                continue
            known[feature] = count
            if count == 1:
                norm_sq += entry[1]
                rows.append(entry[2])
            else:
                value = _tfidf(count, entry[0])
                norm_sq += value * value
                rows.append([value * w for w in self.weights[feature][1]])
        vector = [sum(column, 0.0) for column in zip(*rows, strict=True)]
        return _Part(
            known=frozenset(known),
            repeated={f: n for f, n in known.items() if n > 1},
            vector=tuple(vector) or (0.0,) * len(self.intents),
            norm_sq=norm_sq,
        )

    def _correct_shared(self, parts: list[_Part], vectors: list[Sequence[float]]) -> float:
        """Count each feature found in more than one part once, with its total count: append
        to ``vectors`` what turns the parts' sums into that, and return the change of the
        squared norm.

        A feature that is once in each of k parts entered the sums as k × idf·row; it must
        be (1 + log k) × idf·row. Longer messages share dozens of short n-grams ("e ", "th"),
        so these corrections are summed per k (one factor each) rather than one by one; a
        feature repeated inside a part ("an" in "banana") is corrected on its own."""
        seen: set[str] = set()
        shared: set[str] = set()
        for part in parts:
            shared |= seen & part.known
            seen |= part.known
        occurrences = Counter(chain.from_iterable(part.known & shared for part in parts))
        repeated = shared.intersection(chain.from_iterable(part.repeated for part in parts))
        once = self._once
        by_occurrences: dict[int, list[tuple[float, float, tuple[float, ...]]]] = {}
        norm_change = 0.0
        for feature, k in occurrences.items():
            if feature in repeated:
                idf, row = self.weights[feature]
                counts = [part.repeated.get(feature, 1) for part in parts if feature in part.known]
                summed = [_tfidf(n, idf) for n in counts]
                value = _tfidf(sum(counts), idf)
                norm_change += value * value - sum(v * v for v in summed)
                vectors.append([(value - sum(summed)) * w for w in row])
            else:
                by_occurrences.setdefault(k, []).append(once[feature])
        for k, entries in by_occurrences.items():
            grown = 1.0 + math.log(k)  # the value at count k, in units of idf
            norm_change += (grown * grown - k) * sum(entry[1] for entry in entries)
            rows = [entry[2] for entry in entries]
            totals = [sum(column, 0.0) for column in zip(*rows, strict=True)]
            vectors.append([(grown - k) * total for total in totals])
        return norm_change

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

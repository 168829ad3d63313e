"""The default agent: offline, deterministic intent classification and answers from a shipped
knowledge base.

How a message is handled:

1. Classify: a linear model over word and character n-grams (messaging.agent.classifier),
   trained on ``data/train.jsonl``, gives every intent a probability.
2. Overrule where rules must hold every time (messaging.agent.signals): an explicit request
   for a human is ``human_request``; the model's own ``human_request`` must be sure; anger
   markers (shouting, "!!!", strong words, threats) make an angry complaint of any topic.
3. Unsure or off-topic → ``unknown`` with a fixed low confidence; the answer asks the customer
   to rephrase and says what the agent can help with.
4. Answer: the intent's answer in ``knowledge_base.json`` whose ``when`` phrases best match
   the message (normalised: typos of knowledge-base words corrected, synonyms replaced,
   stopwords dropped, light stemming), or the intent's default answer.
5. Escalate (:func:`escalation_policy`, shared with the LLM agent): a request for a human,
   an angry complaint, two low-confidence turns in a row, or past the turn limit.

The knowledge base and the model are data, loaded once per process.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from messaging.agent import conf, signals
from messaging.agent.base import (
    INTENTS,
    AgentBackend,
    AgentReply,
    ConversationSnapshot,
    TurnSnapshot,
)
from messaging.agent.classifier import IntentModel, load_model

KNOWLEDGE_BASE_PATH = Path(__file__).with_name("knowledge_base.json")

# Below this confidence a turn counts as "not understood"; two such turns in a row escalate.
LOW_CONFIDENCE = 0.5
# Confidence reported for ``unknown``: we have no evidence, so it is always low.
UNKNOWN_CONFIDENCE = 0.2
# Below this probability the model's best intent is not trusted: the message is unclear.
MIN_PROBABILITY = 0.35
# The model's ``human_request`` without an explicit request (signals) must be this sure.
MODEL_HUMAN_MIN_PROBABILITY = 0.6
# Confidence reported for an explicit request for a human (signals.asks_for_a_human).
EXPLICIT_HUMAN_CONFIDENCE = 0.9
# A message the model reads as off-topic at least this surely gets the off-topic answer ("I
# can't help with that; I can help with ..."), any other unknown the request to rephrase.
OFF_TOPIC_PROBABILITY = 0.5
# Anger markers needed to escalate: any on a complaint, two on another topic (a shouted
# "I WAS CHARGED TWICE!!!" is an angry complaint about billing).
ANGRY_COMPLAINT_MARKERS = 1
ANGRY_TOPIC_MARKERS = 2
# Typo correction only for longer words: short words have too many one-letter neighbours.
MIN_CORRECTABLE_LENGTH = 5

_TOPIC_INTENTS = frozenset({"account", "billing", "technical"})

REASON_HUMAN_REQUEST = "Customer asked for a human"
REASON_ANGRY = "Angry complaint"
REASON_LOW_CONFIDENCE = "Two low-confidence turns in a row"
REASON_TURN_LIMIT = "Turn limit reached"

_WORD_RE = re.compile(r"\w+")
_APOSTROPHE_RE = re.compile(r"['’‘`´]")
_CURRENCY_RE = re.compile(r"[$€£¥]")
_EXCLAMATIONS_RE = re.compile(r"!{2,}")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into lowercase words; apostrophes vanish so "can't" becomes "cant"."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _APOSTROPHE_RE.sub("", text)
    # A currency sign is a billing hint ("$49.99"), so keep it as a word.
    text = _CURRENCY_RE.sub(" currency ", text)
    return _WORD_RE.findall(text)


def stem(word: str) -> str:
    """Strip common English inflections so "charged", "charges" and "charging" agree.

    Deliberately crude (a small subset of Porter's rules): phrases and messages go through
    the same function, so it only has to be consistent, not linguistically right.
    """
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("ied") and len(word) > 4:
        return word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            # "stopped" → "stopp" → "stop"; l/s/z stay doubled ("billing" → "bill").
            if word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]
            break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


def _within_one_edit(a: str, b: str) -> bool:
    """True if ``a`` and ``b`` differ by one insertion, deletion, substitution or swap."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        diffs = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        if len(diffs) == 1:
            return True
        i, j = (diffs + [-1, -1])[:2]
        return len(diffs) == 2 and j == i + 1 and a[i] == b[j] and a[j] == b[i]
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    """True if ``needle`` occurs as a contiguous run in ``haystack``."""
    n = len(needle)
    if n == 1:
        return needle[0] in haystack
    if needle[0] not in haystack:  # most phrases fail on their first word: no slicing
        return False
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


class _PhraseIndex:
    """Phrases looked up by their first word: a message of a few words is checked against the
    handful of phrases that start with one of them, not against every phrase of the knowledge
    base (testing each phrase with _contains was most of the agent's time on a message). The
    same phrases are found, in the same order."""

    def __init__(self, phrases: Iterable[tuple[str, ...]]) -> None:
        self.phrases = tuple(phrases)
        grouped: dict[str, list[int]] = {}
        for index, phrase in enumerate(self.phrases):
            grouped.setdefault(phrase[0], []).append(index)
        self._by_first_word = {word: tuple(indexes) for word, indexes in grouped.items()}

    def found(self, words: tuple[str, ...]) -> list[int]:
        """The indexes of the phrases that occur in ``words``, in the phrases' order."""
        by_first_word = self._by_first_word
        candidates = [i for word in set(words) for i in by_first_word.get(word, ())]
        return [i for i in sorted(candidates) if _contains(words, self.phrases[i])]


@dataclass(frozen=True)
class _Answer:
    topic: str
    when: tuple[tuple[str, ...], ...]
    text: str


@dataclass(frozen=True)
class _Intent:
    name: str
    answers: tuple[_Answer, ...]
    # Every answer's ``when`` phrases in one index, and the answer each of them belongs to.
    when_index: _PhraseIndex = field(init=False, repr=False, compare=False)
    when_answer: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pairs = [(i, p) for i, answer in enumerate(self.answers) for p in answer.when]
        object.__setattr__(self, "when_index", _PhraseIndex(p for _, p in pairs))
        object.__setattr__(self, "when_answer", tuple(i for i, _ in pairs))


@dataclass(frozen=True)
class Anger:
    """Anger markers found in a message; ``score`` is how many there are."""

    markers: tuple[str, ...] = ()

    @property
    def score(self) -> int:
        return len(self.markers)


@dataclass(frozen=True)
class Classification:
    """The result of classifying one message (internal: never sent to clients)."""

    intent: str
    confidence: float
    topic: str
    answer: str
    anger: Anger
    scores: Mapping[str, float] = field(default_factory=dict)


class KnowledgeBase:
    """A compiled ``knowledge_base.json``: normalisation tables, weighted phrases, answers."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.stopwords = frozenset(data.get("stopwords", ()))
        self.escalation_replies: dict[str, str] = dict(data["escalation_replies"])

        raw_intents: Mapping[str, Any] = data["intents"]
        if set(raw_intents) != set(INTENTS):
            raise ValueError(f"knowledge base must define exactly the intents {INTENTS}")
        missing = {"human_request", "angry", "low_confidence", "turn_limit"} - set(
            self.escalation_replies
        )
        if missing:
            raise ValueError(f"knowledge base lacks escalation replies: {sorted(missing)}")

        # Synonyms: variant word sequence → canonical words, indexed by first word and tried
        # longest first so "charged me twice" wins over a shorter overlapping variant.
        self._synonyms: dict[str, list[tuple[tuple[str, ...], list[str]]]] = {}
        for canonical, variants in data.get("synonyms", {}).items():
            for variant in variants:
                words = tuple(tokenize(variant))
                if words:
                    self._synonyms.setdefault(words[0], []).append((words, [canonical]))
        for entries in self._synonyms.values():
            entries.sort(key=lambda entry: -len(entry[0]))

        anger = data.get("anger", {})
        phrase_sources: list[str] = [
            *_intent_phrases(raw_intents),
            *anger.get("self_reports", ()),
            *anger.get("strong_words", ()),
            *anger.get("threats", ()),
        ]
        # Words the typo corrector may correct *to*: every word an answer or anger rule looks for.
        targets = {
            word
            for text in [*phrase_sources, *data.get("synonyms", {})]
            for word in tokenize(text)
            if len(word) >= MIN_CORRECTABLE_LENGTH and word.isalpha()
        }
        for variants in data.get("synonyms", {}).values():
            targets.update(
                w
                for v in variants
                for w in tokenize(v)
                if len(w) >= MIN_CORRECTABLE_LENGTH and w.isalpha()
            )
        # Words never corrected: known words, including ordinary English that sits one letter
        # away from a knowledge-base word ("think" is not a typo of "thank").
        known = set(targets) | set(self.stopwords) | set(data.get("common_words", ()))
        self._known_words = frozenset(known)
        self._known_stems = frozenset(stem(w) for w in known)
        self._correction_index: dict[str, set[str]] = {}
        for word in targets:
            for key in {word} | _deletions(word):
                self._correction_index.setdefault(key, set()).add(word)

        self.intents: dict[str, _Intent] = {}
        for name, spec in raw_intents.items():
            answers = tuple(
                _Answer(
                    topic=answer["topic"],
                    when=tuple(self._phrase(p) for p in answer.get("when", ())),
                    text=answer["text"],
                )
                for answer in spec["answers"]
            )
            if not answers or answers[-1].when:
                raise ValueError(f"intent {name!r} needs a default answer (last, no 'when')")
            self.intents[name] = _Intent(name=name, answers=answers)
        self.self_reports = _PhraseIndex(self._phrase(p) for p in anger.get("self_reports", ()))
        self.strong_words = _PhraseIndex(self._phrase(p) for p in anger.get("strong_words", ()))
        self.threats = _PhraseIndex(self._phrase(p) for p in anger.get("threats", ()))

    @classmethod
    def from_path(cls, path: str | Path) -> KnowledgeBase:
        with Path(path).open(encoding="utf-8") as fh:
            return cls(json.load(fh))

    def _phrase(self, text: str) -> tuple[str, ...]:
        words = self.normalise(text, correct_typos=False)
        if not words:
            raise ValueError(f"knowledge base phrase {text!r} is empty after normalisation")
        return words

    def _correct(self, word: str) -> str:
        if (
            len(word) < MIN_CORRECTABLE_LENGTH
            or not word.isalpha()
            or word in self._known_words
            or stem(word) in self._known_stems
        ):
            return word
        candidates: set[str] = set()
        for key in {word} | _deletions(word):
            candidates.update(self._correction_index.get(key, ()))
        matches = sorted(c for c in candidates if _within_one_edit(word, c))
        # Sorted, so an ambiguous typo always resolves the same way.
        return matches[0] if matches else word

    def _replace_synonyms(self, words: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(words):
            for variant, canonical in self._synonyms.get(words[i], ()):
                if tuple(words[i : i + len(variant)]) == variant:
                    out.extend(canonical)
                    i += len(variant)
                    break
            else:
                out.append(words[i])
                i += 1
        return out

    def answer(self, intent: str, topic: str) -> _Answer:
        """The answer of ``intent`` whose topic is ``topic``."""
        return next(a for a in self.intents[intent].answers if a.topic == topic)

    def normalise(self, text: str, *, correct_typos: bool = True) -> tuple[str, ...]:
        """Turn text into the stemmed word sequence phrases are matched against."""
        words = tokenize(text)
        if correct_typos:
            words = [self._correct(w) for w in words]
        words = self._replace_synonyms(words)
        return tuple(stem(w) for w in words if w not in self.stopwords)


def _intent_phrases(raw_intents: Mapping[str, Any]) -> Iterable[str]:
    """Every phrase an intent's answers mention (used to build the typo lexicon)."""
    for spec in raw_intents.values():
        for answer in spec["answers"]:
            yield from answer.get("when", ())


@functools.cache
def load_knowledge_base(path: str | Path = KNOWLEDGE_BASE_PATH) -> KnowledgeBase:
    """Load and compile a knowledge base file; cached, so each file is read once."""
    return KnowledgeBase.from_path(path)


def _is_shouting(text: str) -> bool:
    """Mostly capitals, over at least 8 letters and two words of two letters or more. The
    checks run cheapest and most often false first, by C loops over the characters (this runs
    on every message)."""
    letters = "".join(filter(str.isalpha, text))
    if len(letters) < 8 or sum(map(str.isupper, letters)) / len(letters) < 0.8:
        return False
    words = [w for w in text.split() if sum(map(str.isalpha, w)) >= 2]
    return len(words) >= 2


def turn_limit_exceeded(conversation: ConversationSnapshot, max_turns: int) -> bool:
    """True when the new message takes the conversation past ``max_turns`` customer turns."""
    return conversation.turn_count + 1 > max_turns


def previous_agent_confidence(recent: tuple[TurnSnapshot, ...]) -> float | None:
    """Confidence of the agent's latest reply, or None if there is none to compare with.

    An operator or system message after that reply (an escalation that was handled) breaks
    the chain: the conversation starts afresh with the agent.
    """
    for turn in reversed(recent):
        if turn.role == "customer":
            continue
        if turn.role == "agent":
            return turn.confidence
        return None
    return None


def is_angry(intent: str, anger: Anger) -> bool:
    """Anger markers on a complaint, or many of them on a topic message (a shouted "I WAS
    CHARGED TWICE!!!" is an angry complaint about billing)."""
    if intent == "complaint":
        return anger.score >= ANGRY_COMPLAINT_MARKERS
    if intent in _TOPIC_INTENTS:
        return anger.score >= ANGRY_TOPIC_MARKERS
    return False


def escalation_policy(
    conversation: ConversationSnapshot,
    *,
    intent: str,
    confidence: float,
    angry: bool,
    max_turns: int,
    replies: Mapping[str, str],
) -> tuple[str, str] | None:
    """When a turn goes to a human, for every agent (rules and LLM alike): the customer asked
    for one, is angry, the conversation passed the turn limit, or this and the agent's
    previous reply were both low-confidence. Returns ``(reason, reply text)`` or None."""
    if intent == "human_request":
        return REASON_HUMAN_REQUEST, replies["human_request"]
    if angry:
        return REASON_ANGRY, replies["angry"]
    if turn_limit_exceeded(conversation, max_turns):
        return f"{REASON_TURN_LIMIT} ({max_turns} messages)", replies["turn_limit"]
    previous = previous_agent_confidence(conversation.recent_messages)
    if confidence < LOW_CONFIDENCE and previous is not None and previous < LOW_CONFIDENCE:
        return REASON_LOW_CONFIDENCE, replies["low_confidence"]
    return None


class RuleBasedAgent(AgentBackend):
    """Offline agent answering from ``knowledge_base.json``; the default ``AGENT_BACKEND``.

    ``max_turns`` defaults to ``settings.AGENT_MAX_TURNS`` (20 when unset), read per call so
    test settings overrides apply; pass it explicitly to use the agent without Django.
    """

    name = "rule_based"

    def __init__(
        self,
        *,
        max_turns: int | None = None,
        knowledge_base: KnowledgeBase | None = None,
        model: IntentModel | None = None,
    ) -> None:
        self._max_turns = max_turns
        self.knowledge_base = knowledge_base or load_knowledge_base()
        self.model = model or load_model()

    @property
    def max_turns(self) -> int:
        if self._max_turns is not None:
            return self._max_turns
        return int(conf.setting("AGENT_MAX_TURNS", conf.DEFAULT_MAX_TURNS))

    def classify(self, text: str) -> Classification:
        """Classify one message on its own (no conversation context).

        The learned model (messaging.agent.classifier) names the intent; explicit signals
        (messaging.agent.signals) overrule it where a rule must hold every time: a request
        for a human is ``human_request`` whatever the model says, and anger markers turn a
        message into an angry complaint. A message the model is unsure about is ``unknown``.
        """
        kb = self.knowledge_base
        words = kb.normalise(text)
        anger = self._anger(text, words)
        prediction = self.model.probabilities(text)
        intent, confidence = prediction.intent, prediction.probability
        off_topic = False
        if signals.asks_for_a_human(text):
            intent = "human_request"
            confidence = max(prediction.probability_of("human_request"), EXPLICIT_HUMAN_CONFIDENCE)
        elif intent == "human_request":
            # The model's own reading, without an explicit request: believed only when it
            # is sure, since every human_request pages an operator.
            if confidence < MODEL_HUMAN_MIN_PROBABILITY:
                intent, confidence = prediction.ranked[1]
        if intent == "unknown" or prediction.known_features == 0 or confidence < MIN_PROBABILITY:
            off_topic = prediction.off_topic >= OFF_TOPIC_PROBABILITY
            intent, confidence = "unknown", UNKNOWN_CONFIDENCE
        if is_angry(intent, anger):
            # Angry about a topic is an angry complaint: it goes to a human, and is counted
            # as the complaint it is.
            intent = "complaint"
        confidence = round(confidence, 3)
        if intent == "unknown":
            answer = kb.answer("unknown", "off_topic" if off_topic else "clarify")
        else:
            answer = self._pick_answer(kb.intents[intent], words)
        return Classification(
            intent=intent,
            confidence=confidence,
            topic=answer.topic,
            answer=answer.text,
            anger=anger,
            scores=dict(prediction.ranked),
        )

    def _anger(self, text: str, words: tuple[str, ...]) -> Anger:
        markers: list[str] = []
        if _is_shouting(text):
            markers.append("shouting")
        if _EXCLAMATIONS_RE.search(text) or text.count("!") >= 3:
            markers.append("exclamations")
        # A customer who says they are angry ("I'm so angry", "fed up", "outrageous") is as
        # angry as it gets on any topic: the self-report counts as two markers.
        kb = self.knowledge_base
        reported = kb.self_reports.found(words)
        if reported:
            phrase = kb.self_reports.phrases[reported[0]]
            markers.extend([f"self_report:{' '.join(phrase)}"] * ANGRY_TOPIC_MARKERS)
        # Two strong words are as angry as it gets; more should not outweigh shouting etc.
        markers.extend(
            f"strong_word:{' '.join(kb.strong_words.phrases[i])}"
            for i in kb.strong_words.found(words)[:2]
        )
        if kb.threats.found(words):
            markers.append("threat")
        return Anger(markers=tuple(markers))

    @staticmethod
    def _pick_answer(intent: _Intent, words: tuple[str, ...]) -> _Answer:
        # Longer matched phrases are more specific evidence for a sub-topic.
        scores: dict[int, int] = {}
        for i in intent.when_index.found(words):
            answer = intent.when_answer[i]
            scores[answer] = scores.get(answer, 0) + len(intent.when_index.phrases[i])
        best: _Answer = intent.answers[-1]  # the default answer, which has no phrases
        best_score = 0
        for answer in sorted(scores):  # in the answers' order: the first of equal scores wins
            if scores[answer] > best_score:
                best, best_score = intent.answers[answer], scores[answer]
        return best

    def is_angry(self, classification: Classification) -> bool:
        """An angry complaint: a complaint with anger markers, or a very angry topic message."""
        return is_angry(classification.intent, classification.anger)

    def escalation_for(
        self, conversation: ConversationSnapshot, classification: Classification
    ) -> tuple[str, str] | None:
        """Return ``(reason, reply text)`` if this turn must go to a human, else None."""
        return escalation_policy(
            conversation,
            intent=classification.intent,
            confidence=classification.confidence,
            angry=self.is_angry(classification),
            max_turns=self.max_turns,
            replies=self.knowledge_base.escalation_replies,
        )

    def reply_for(
        self, conversation: ConversationSnapshot, classification: Classification
    ) -> AgentReply:
        """Turn a classification into the reply for this conversation."""
        escalation = self.escalation_for(conversation, classification)
        if escalation is not None:
            reason, text = escalation
            return AgentReply(
                text=text,
                intent=classification.intent,
                confidence=classification.confidence,
                escalate=True,
                escalation_reason=reason,
            )
        return AgentReply(
            text=classification.answer,
            intent=classification.intent,
            confidence=classification.confidence,
            escalate=False,
        )

    async def respond(self, conversation: ConversationSnapshot, message: str) -> AgentReply:
        # Pure CPU work in well under a millisecond for ordinary messages: no need to leave
        # the event loop for a thread.
        return self.reply_for(conversation, self.classify(message))

    def respond_now(self, conversation: ConversationSnapshot, message: str) -> AgentReply:
        # No I/O: sync callers get the answer without a hop to the background loop.
        return self.reply_for(conversation, self.classify(message))

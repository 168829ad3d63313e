"""Optional agent backed by any OpenAI-compatible chat-completions server.

Set ``AGENT_BACKEND = "messaging.agent.llm.OpenAICompatibleAgent"`` plus
``AGENT_LLM_BASE_URL`` (e.g. ``http://localhost:11434/v1``), ``AGENT_LLM_MODEL``, and
optionally ``AGENT_LLM_API_KEY`` and ``AGENT_LLM_TIMEOUT`` (seconds, default 10).

The model is an unreliable dependency, so :meth:`OpenAICompatibleAgent.respond` never
raises: any failure (network, timeout, HTTP error, output that is not the JSON we asked
for) is logged and the rule-based agent answers instead, with ``metadata["fallback"]``
true. The escalation policy of the rule-based agent (`rules.escalation_policy`: a request
for a human, anger, two low-confidence turns, the turn limit) applies here too, whatever the
model says.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

import httpx

from messaging.agent import conf
from messaging.agent.base import (
    INTENTS,
    AgentBackend,
    AgentReply,
    ConversationSnapshot,
    TurnSnapshot,
)
from messaging.agent.rules import (
    LOW_CONFIDENCE,
    RuleBasedAgent,
    escalation_policy,
    is_angry,
)

logger = logging.getLogger(__name__)

# Caps on what the model may put in front of customers and operators.
MAX_REPLY_CHARS = 4000
MAX_REASON_CHARS = 200
DEFAULT_ESCALATION_REASON = "Escalated by the assistant"

SYSTEM_PROMPT = f"""\
You are the customer-support assistant of Parley, a software product. Answer the customer's \
latest message helpfully, briefly and politely, in the customer's language. Never invent \
account details, prices or policies you do not know; offer to pass the conversation to a \
human operator instead.

Respond with ONLY a JSON object, no other text, with exactly these fields:
{{"reply": string, "intent": string, "confidence": number, "escalate": boolean, \
"reason": string}}
- "reply": your answer to the customer.
- "intent": one of {", ".join(INTENTS)}.
- "confidence": how sure you are of the intent, from 0 to 1.
- "escalate": true if a human operator should take over: the customer asks for a human, is \
very angry, or you cannot help. When true, "reply" must tell the customer that a human \
operator will take over shortly.
- "reason": when escalating, a short reason for the operator (e.g. "Customer asked for a \
human"); otherwise an empty string."""

# Earlier turns are replayed as chat history; operators and system notices speak as the
# assistant side, labelled, since mid-conversation "system" roles are not portable.
_ROLE_PREFIX = {"agent": "", "operator": "[Human operator] ", "system": "[Notice] "}
_FENCE_RE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


class LLMError(Exception):
    """The model could not produce a usable answer (the message is safe to log)."""


@dataclass(frozen=True)
class _Settings:
    base_url: str
    model: str
    api_key: str
    timeout: float


@dataclass(frozen=True)
class ModelAnswer:
    """The validated fields of the model's JSON answer."""

    reply: str
    intent: str
    confidence: float
    escalate: bool
    reason: str


def _extract_json_object(content: str) -> dict[str, Any]:
    """Find the JSON object in the model's text, tolerating code fences and chatter."""
    text = _FENCE_RE.sub("", content.strip())
    try:
        value = json.loads(text)
    except ValueError:
        # Not JSON as a whole: models often wrap the object in prose ("Here you go: {...}").
        start, end = text.find("{"), text.rfind("}")
        try:
            value = json.loads(text[start : end + 1]) if 0 <= start < end else None
        except ValueError:
            value = None
    if not isinstance(value, dict):
        raise LLMError("model output is not a JSON object")
    return value


def parse_completion(payload: Any) -> ModelAnswer:
    """Validate a chat-completions response body; raise :class:`LLMError` if unusable."""
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LLMError("response has no choices[0].message.content") from exc
    if not isinstance(content, str):
        raise LLMError("message content is not a string")
    data = _extract_json_object(content)

    reply = data.get("reply")
    if not isinstance(reply, str) or not reply.strip():
        raise LLMError("'reply' is missing or not a non-empty string")
    intent = data.get("intent")
    if not isinstance(intent, str) or intent.strip().lower() not in INTENTS:
        raise LLMError("'intent' is missing or not a known intent")
    confidence = data.get("confidence")
    # bool is an int subclass; "true" as a confidence is a malformed answer, not 1.0.
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not math.isfinite(confidence)
    ):
        raise LLMError("'confidence' is missing or not a finite number")
    escalate = data.get("escalate")
    if not isinstance(escalate, bool):
        raise LLMError("'escalate' is missing or not a boolean")
    reason = data.get("reason") or ""
    if not isinstance(reason, str):
        raise LLMError("'reason' is not a string")
    return ModelAnswer(
        reply=reply.strip()[:MAX_REPLY_CHARS],
        intent=intent.strip().lower(),
        confidence=min(1.0, max(0.0, float(confidence))),
        escalate=escalate,
        reason=reason.strip()[:MAX_REASON_CHARS],
    )


def build_messages(conversation: ConversationSnapshot, message: str) -> list[dict[str, str]]:
    """The chat-completions ``messages``: instructions, recent history, the new message."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for turn in conversation.recent_messages:
        messages.append(_history_entry(turn))
    messages.append({"role": "user", "content": message})
    return messages


def _history_entry(turn: TurnSnapshot) -> dict[str, str]:
    if turn.role == "customer":
        return {"role": "user", "content": turn.content}
    return {"role": "assistant", "content": _ROLE_PREFIX.get(turn.role, "") + turn.content}


class OpenAICompatibleAgent(AgentBackend):
    """Agent that asks an OpenAI-compatible chat-completions server, falling back to rules.

    Every keyword argument defaults to the matching ``AGENT_LLM_*`` setting, read when a
    message is answered (so settings overrides apply and nothing is read at import time).
    ``transport`` lets tests plug in an ``httpx`` mock transport.
    """

    name = "llm"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        max_turns: int | None = None,
        fallback: RuleBasedAgent | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base_url = base_url
        self._model = model
        self._api_key = api_key
        self._timeout = timeout
        self._transport = transport
        self.rules = fallback or RuleBasedAgent(max_turns=max_turns)

    def __repr__(self) -> str:
        # Never show the API key, even in a debugger or a traceback's locals.
        return f"<{type(self).__name__} base_url={self._base_url!r} model={self._model!r}>"

    def _settings(self) -> _Settings:
        base_url = self._base_url or conf.setting("AGENT_LLM_BASE_URL", "")
        model = self._model or conf.setting("AGENT_LLM_MODEL", "")
        api_key = (
            self._api_key if self._api_key is not None else conf.setting("AGENT_LLM_API_KEY", "")
        )
        timeout = self._timeout
        if timeout is None:
            timeout = conf.setting("AGENT_LLM_TIMEOUT", conf.DEFAULT_LLM_TIMEOUT)
        if not base_url:
            raise LLMError("AGENT_LLM_BASE_URL is not set")
        if not model:
            raise LLMError("AGENT_LLM_MODEL is not set")
        try:
            timeout = float(timeout)
        except (TypeError, ValueError) as exc:
            raise LLMError("AGENT_LLM_TIMEOUT is not a number") from exc
        return _Settings(str(base_url).rstrip("/"), str(model), str(api_key or ""), timeout)

    async def ask_model(self, conversation: ConversationSnapshot, message: str) -> ModelAnswer:
        """Call the server once and return its validated answer; raises on any failure."""
        settings = self._settings()
        headers = {"Accept": "application/json"}
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        body = {
            "model": settings.model,
            "messages": build_messages(conversation, message),
            "temperature": 0,
        }
        # httpx's timeout bounds each network operation; the outer deadline bounds the whole
        # call, so a server trickling bytes cannot hold a request for longer.
        # A client per call: the agent is shared across event loops (ASGI, asyncio.run in
        # tests), and a pooled client is bound to the loop that created it.
        async with asyncio.timeout(settings.timeout):
            async with httpx.AsyncClient(
                timeout=settings.timeout, transport=self._transport
            ) as client:
                response = await client.post(
                    f"{settings.base_url}/chat/completions", json=body, headers=headers
                )
                response.raise_for_status()
                try:
                    payload = response.json()
                except ValueError as exc:
                    raise LLMError("response body is not JSON") from exc
        return parse_completion(payload)

    async def respond(self, conversation: ConversationSnapshot, message: str) -> AgentReply:
        try:
            answer = await self.ask_model(conversation, message)
        except Exception as exc:  # noqa: BLE001 - any failure must degrade, never 5xx
            # Exception text only: httpx errors name the URL, never the headers (API key),
            # and ours never quote model output (it may echo customer data).
            logger.warning(
                "LLM agent failed, answering with the rule-based agent: %s: %s",
                type(exc).__name__,
                exc,
            )
            reply = await self.rules.respond(conversation, message)
            return AgentReply(
                text=reply.text,
                intent=reply.intent,
                confidence=reply.confidence,
                escalate=reply.escalate,
                escalation_reason=reply.escalation_reason,
                metadata={"fallback": True},
            )
        return self._enforce_hard_rules(conversation, message, answer)

    def _enforce_hard_rules(
        self, conversation: ConversationSnapshot, message: str, answer: ModelAnswer
    ) -> AgentReply:
        """Apply the shared escalation policy even if the model disagrees."""
        reply = AgentReply(
            text=answer.reply,
            intent=answer.intent,
            confidence=answer.confidence,
            escalate=answer.escalate,
            escalation_reason=(answer.reason or DEFAULT_ESCALATION_REASON)
            if answer.escalate
            else "",
            metadata={"fallback": False},
        )
        if answer.escalate:
            # The model escalated by itself; its reply was asked to announce the handover.
            return reply

        intent, confidence = answer.intent, answer.confidence
        ruled = self.rules.classify(message)
        if intent != "human_request":
            # Second opinion from the rules: a clear "let me talk to a person" must reach a
            # human even if the model tried to handle it itself.
            if ruled.intent == "human_request" and ruled.confidence >= LOW_CONFIDENCE:
                intent, confidence = ruled.intent, ruled.confidence
        # Anger is measured by the rules (markers in the text) against either reading of the
        # topic; then the one escalation policy every agent shares decides.
        decision = escalation_policy(
            conversation,
            intent=intent,
            confidence=confidence,
            angry=is_angry(intent, ruled.anger) or self.rules.is_angry(ruled),
            max_turns=self.rules.max_turns,
            replies=self.rules.knowledge_base.escalation_replies,
        )
        if decision is None:
            return reply
        reason, text = decision
        return AgentReply(
            text=text,
            intent=intent,
            confidence=confidence,
            escalate=True,
            escalation_reason=reason,
            metadata={"fallback": False},
        )

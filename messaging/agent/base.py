"""The agent interface: immutable snapshots in, an :class:`AgentReply` out.

Backends never touch the ORM. The messaging service builds a :class:`ConversationSnapshot`
(inside its transaction, from the database) and hands it over, so an agent can be swapped,
called from sync or async code, and tested without a database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

INTENTS: tuple[str, ...] = (
    "greeting",
    "account",
    "billing",
    "technical",
    "complaint",
    "human_request",
    "goodbye",
    "unknown",
)


@dataclass(frozen=True)
class TurnSnapshot:
    """One earlier message of the conversation, as the agent sees it."""

    role: str  # "customer" | "agent" | "operator" | "system"
    content: str
    intent: str | None
    confidence: float | None


@dataclass(frozen=True)
class ConversationSnapshot:
    """What an agent may know about the conversation a new message belongs to."""

    id: int | None  # None when the message starts a new conversation
    customer_id: int
    turn_count: int  # customer messages BEFORE the new one
    recent_messages: tuple[TurnSnapshot, ...]  # up to the last 10 messages, oldest first


@dataclass(frozen=True)
class AgentReply:
    """The agent's answer to one customer message.

    ``metadata`` is returned to clients verbatim, so it holds only client-safe fields
    (today just ``{"fallback": bool}``); prompts, raw model output and scoring details
    never go in it.
    """

    text: str
    intent: str  # one of INTENTS
    confidence: float  # 0..1
    escalate: bool
    escalation_reason: str = ""  # short human-readable reason, e.g. "Customer asked for a human"
    metadata: dict = field(default_factory=dict)


class AgentBackend(ABC):
    """A support agent. ``AGENT_BACKEND`` names a subclass; see :func:`messaging.agent.get_agent`.

    Implementations must be safe to share between requests (one instance is cached per
    process) and must not raise for ordinary input: a failing dependency degrades to an
    answer, never to a 5xx.
    """

    name: str  # short public name, shown to clients in the "agent" field

    @abstractmethod
    async def respond(self, conversation: ConversationSnapshot, message: str) -> AgentReply:
        """Answer ``message``, the customer's new message in ``conversation``."""

    def respond_now(self, conversation: ConversationSnapshot, message: str) -> AgentReply | None:
        """The same answer as :meth:`respond`, computed in the caller's thread, or None.

        A backend that needs no I/O (the rule-based agent) returns its reply here, so a sync
        caller (a WSGI request thread) skips the hand-off to the process's background event
        loop -- measured at about a tenth of a message's server CPU (docs/benchmarks.md). A
        backend that waits on anything returns None (the default) and is awaited through
        :meth:`respond`.
        """
        return None

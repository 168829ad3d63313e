"""The knowledge base's texts and a conversation to ask an agent in, for the agent tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from messaging.agent.base import AgentBackend, AgentReply, ConversationSnapshot, TurnSnapshot
from messaging.agent.rules import KNOWLEDGE_BASE_PATH, RuleBasedAgent

KB = json.loads(KNOWLEDGE_BASE_PATH.read_text(encoding="utf-8"))
ESCALATION = KB["escalation_replies"]


def conversation(
    *, turn_count: int = 0, recent: tuple[TurnSnapshot, ...] = ()
) -> ConversationSnapshot:
    return ConversationSnapshot(id=7, customer_id=42, turn_count=turn_count, recent_messages=recent)


def reply_of(agent: AgentBackend, message: str, **snapshot: Any) -> AgentReply:
    """`agent`'s answer to `message` in `conversation(**snapshot)`."""
    return asyncio.run(agent.respond(conversation(**snapshot), message))


def rules_reply(message: str, **snapshot: Any) -> AgentReply:
    """What the rule-based agent (20 turns) answers."""
    return reply_of(RuleBasedAgent(max_turns=20), message, **snapshot)

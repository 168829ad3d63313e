"""A deterministic agent for the escalation tests: the hand-off rules of the real agent are
tested with the agent; here only "does the agent speak or not" matters."""

from __future__ import annotations

from messaging.agent import AgentBackend, AgentReply, ConversationSnapshot

HANDOFF_TEXT = "Let me find a colleague for you."


class ScriptedAgent(AgentBackend):
    """Escalates when the customer mentions a human; otherwise echoes with intent greeting."""

    name = "scripted"

    async def respond(self, conversation: ConversationSnapshot, message: str) -> AgentReply:
        if "human" in message.lower():
            return AgentReply(
                text=HANDOFF_TEXT,
                intent="human_request",
                confidence=0.95,
                escalate=True,
                escalation_reason="Customer asked for a human",
            )
        return AgentReply(
            text=f"Agent: {message}", intent="greeting", confidence=0.8, escalate=False
        )

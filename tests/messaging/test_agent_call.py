"""How message_send calls the agent: in the request's thread when the backend can answer
without I/O, through the background event loop otherwise."""

import pytest

from messaging import services
from messaging.agent import AgentBackend, AgentReply, ConversationSnapshot, get_agent
from tests.factories import ConversationFactory, UserFactory

pytestmark = pytest.mark.django_db


class AwaitedAgent(AgentBackend):
    """An agent with only the async entry point, like one that calls a remote model."""

    name = "awaited"

    async def respond(self, conversation: ConversationSnapshot, message: str) -> AgentReply:
        return AgentReply(
            text=f"awaited: {message}", intent="greeting", confidence=0.9, escalate=False
        )


@pytest.fixture
def background_calls(monkeypatch):
    calls = []
    real = services.run_in_background

    def counting(coro, **kwargs):
        calls.append(coro)
        return real(coro, **kwargs)

    monkeypatch.setattr(services, "run_in_background", counting)
    return calls


def test_rule_agent_answers_without_the_background_loop(background_calls):
    conversation = ConversationFactory()

    result = services.message_send(
        customer=conversation.customer, conversation_id=conversation.pk, text="hello"
    )

    assert result.agent == get_agent().name == "rule_based"
    assert result.reply_text
    assert background_calls == []


def test_agent_without_respond_now_is_awaited_on_the_background_loop(background_calls, settings):
    settings.AGENT_BACKEND = "tests.messaging.test_agent_call.AwaitedAgent"
    get_agent.cache_clear()
    try:
        customer = UserFactory()
        result = services.message_send(customer=customer, conversation_id=None, text="hello")
    finally:
        get_agent.cache_clear()

    assert result.reply_text == "awaited: hello"
    assert len(background_calls) == 1

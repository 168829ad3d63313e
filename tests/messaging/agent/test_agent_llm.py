"""OpenAICompatibleAgent against a real HTTP server on 127.0.0.1 started by each test."""

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from messaging.agent import conf
from messaging.agent.base import AgentReply, TurnSnapshot
from messaging.agent.llm import SYSTEM_PROMPT, OpenAICompatibleAgent
from tests.messaging.agent.replies import ESCALATION, reply_of, rules_reply

API_KEY = "sk-test-secret-0123456789"
MODEL_ANSWER = {
    "reply": "Sorry about the double charge — I've asked billing to refund it.",
    "intent": "billing",
    "confidence": 0.87,
    "escalate": False,
    "reason": "",
}


@dataclass
class FakeLLMServer:
    """What the next responses look like, and what the server received."""

    url: str = ""
    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, content: Any) -> None:
        """Reply with a chat completion whose message content is ``content`` (JSON-encoded
        unless it is already a string)."""
        text = content if isinstance(content, str) else json.dumps(content)
        self.body = json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
            }
        ).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still sleeping past the client's timeout is abandoned


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    state = FakeLLMServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", 0))
            state.requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "json": json.loads(self.rfile.read(length)),
                }
            )
            time.sleep(state.delay)
            try:
                self.send_response(state.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(state.body)))
                self.end_headers()
                self.wfile.write(state.body)
            except OSError:
                pass  # the client gave up (timeout tests)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.answer(MODEL_ANSWER)
    yield state
    server.shutdown()
    server.server_close()


def _agent(url: str, **kwargs: Any) -> OpenAICompatibleAgent:
    options = {"model": "test-model", "api_key": API_KEY, "timeout": 2.0, "max_turns": 20}
    return OpenAICompatibleAgent(base_url=url, **{**options, **kwargs})


def _assert_fell_back(reply: AgentReply, message: str) -> None:
    expected = rules_reply(message)
    assert reply.metadata == {"fallback": True}
    assert (reply.text, reply.intent, reply.confidence, reply.escalate) == (
        expected.text,
        expected.intent,
        expected.confidence,
        expected.escalate,
    )


_LEGAL_THREAT = {
    **MODEL_ANSWER,
    "intent": "complaint",
    "escalate": True,
    "reason": "Customer threatens legal action",
    "reply": "I'm sorry. A human operator will take over shortly.",
}


@pytest.mark.parametrize(
    ("answer", "message", "expected"),
    [
        # expected: text, intent, confidence, escalate, escalation_reason
        (MODEL_ANSWER, "I was charged twice", (MODEL_ANSWER["reply"], "billing", 0.87, False, "")),
        (
            _LEGAL_THREAT,
            "my lawyer will hear about this",
            (_LEGAL_THREAT["reply"], "complaint", 0.87, True, "Customer threatens legal action"),
        ),
    ],
    ids=["answer", "escalation"],
)
def test_model_answer_and_escalation_are_returned(llm_server, answer, message, expected):
    llm_server.answer(answer)

    reply = reply_of(_agent(llm_server.url), message)

    assert reply == AgentReply(*expected, metadata={"fallback": False})


def test_request_is_an_authenticated_chat_completion(llm_server):
    history = (
        TurnSnapshot(role="customer", content="hello", intent="greeting", confidence=0.7),
        TurnSnapshot(
            role="agent", content="Hi! How can I help?", intent="greeting", confidence=0.7
        ),
        TurnSnapshot(role="operator", content="Anything else?", intent=None, confidence=None),
    )

    reply_of(_agent(llm_server.url + "/"), "I was charged twice", turn_count=1, recent=history)

    [request] = llm_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert request["json"]["model"] == "test-model"
    assert request["json"]["temperature"] == 0
    assert request["json"]["messages"] == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "Hi! How can I help?"},
        {"role": "assistant", "content": "[Human operator] Anything else?"},
        {"role": "user", "content": "I was charged twice"},
    ]


def test_no_authorization_header_without_api_key(llm_server):
    reply_of(_agent(llm_server.url, api_key=""), "hi")

    assert "Authorization" not in llm_server.requests[0]["headers"]


def test_settings_are_read_when_not_passed(llm_server, monkeypatch):
    values = {
        "AGENT_LLM_BASE_URL": llm_server.url,
        "AGENT_LLM_MODEL": "from-settings",
        "AGENT_LLM_API_KEY": "",
        "AGENT_LLM_TIMEOUT": 2,
    }
    monkeypatch.setattr(conf, "setting", lambda name, default: values.get(name, default))

    reply = reply_of(OpenAICompatibleAgent(), "hi")

    assert reply.metadata == {"fallback": False}
    assert llm_server.requests[0]["json"]["model"] == "from-settings"


def test_missing_base_url_falls_back(monkeypatch):
    monkeypatch.setattr(conf, "setting", lambda name, default: default)

    reply = reply_of(OpenAICompatibleAgent(model="m", max_turns=20), "hi there")

    _assert_fell_back(reply, "hi there")


def test_json_in_code_fence_is_accepted(llm_server):
    llm_server.answer("Here you go:\n```json\n" + json.dumps(MODEL_ANSWER) + "\n```")

    reply = reply_of(_agent(llm_server.url), "I was charged twice")

    assert (reply.text, reply.metadata) == (MODEL_ANSWER["reply"], {"fallback": False})


@pytest.mark.parametrize(("given", "clamped"), [(1.7, 1.0), (-0.3, 0.0), (1, 1.0)])
def test_confidence_is_clamped(llm_server, given, clamped):
    llm_server.answer({**MODEL_ANSWER, "confidence": given})

    assert reply_of(_agent(llm_server.url), "I was charged twice").confidence == clamped


def test_timeout_falls_back(llm_server):
    llm_server.delay = 2.0
    started = time.monotonic()

    reply = reply_of(_agent(llm_server.url, timeout=0.2), "I was charged twice")

    assert time.monotonic() - started < 1.5
    _assert_fell_back(reply, "I was charged twice")


def test_server_error_falls_back(llm_server):
    llm_server.status = 500
    llm_server.body = b'{"error": {"message": "boom"}}'

    _assert_fell_back(reply_of(_agent(llm_server.url), "the app crashes"), "the app crashes")


def test_connection_refused_falls_back():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.
    reply = reply_of(_agent(f"http://127.0.0.1:{port}/v1"), "I can't log in")

    _assert_fell_back(reply, "I can't log in")


def test_garbage_body_falls_back(llm_server):
    llm_server.body = b"<html>Bad Gateway</html>"

    _assert_fell_back(reply_of(_agent(llm_server.url), "thanks, bye"), "thanks, bye")


def test_prose_instead_of_json_falls_back(llm_server):
    llm_server.answer("Sure! I can help you with your billing question.")

    _assert_fell_back(
        reply_of(_agent(llm_server.url), "I was charged twice"), "I was charged twice"
    )


@pytest.mark.parametrize(
    "content",
    [
        {k: v for k, v in MODEL_ANSWER.items() if k != "reply"},
        {**MODEL_ANSWER, "reply": "   "},
        {**MODEL_ANSWER, "intent": "sales"},
        {**MODEL_ANSWER, "intent": None},
        {**MODEL_ANSWER, "confidence": "high"},
        {**MODEL_ANSWER, "confidence": True},
        {**MODEL_ANSWER, "escalate": "no"},
        {**MODEL_ANSWER, "reason": ["x"]},
        [MODEL_ANSWER],
    ],
)
def test_wrong_shape_answer_falls_back(llm_server, content):
    llm_server.answer(content)

    _assert_fell_back(
        reply_of(_agent(llm_server.url), "I was charged twice"), "I was charged twice"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"choices": []},
        {"choices": [{"message": {"content": None}}]},
        {"result": "ok"},
        ["not", "an", "object"],
    ],
)
def test_wrong_shape_completion_falls_back(llm_server, body):
    llm_server.body = json.dumps(body).encode()

    _assert_fell_back(
        reply_of(_agent(llm_server.url), "I was charged twice"), "I was charged twice"
    )


def test_unexpected_exception_falls_back():
    def explode(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("transport bug")

    agent = _agent("http://llm.invalid/v1", transport=httpx.MockTransport(explode))

    _assert_fell_back(reply_of(agent, "hi there"), "hi there")


def test_fallback_keeps_rule_escalation(llm_server):
    llm_server.status = 503

    reply = reply_of(_agent(llm_server.url), "let me talk to a person")

    assert reply.escalate is True
    assert reply.escalation_reason == "Customer asked for a human"
    assert reply.metadata == {"fallback": True}


@pytest.mark.parametrize(
    ("model_intent", "message"),
    [
        pytest.param("human_request", "can I get someone on the phone", id="the-models-reading"),
        pytest.param("greeting", "let me talk to a person", id="a-request-the-model-missed"),
    ],
)
def test_a_human_request_always_escalates(llm_server, model_intent, message):
    llm_server.answer({**MODEL_ANSWER, "intent": model_intent, "escalate": False})

    reply = reply_of(_agent(llm_server.url), message)

    assert (reply.intent, reply.escalate, reply.escalation_reason) == (
        "human_request",
        True,
        "Customer asked for a human",
    )
    assert reply.text == ESCALATION["human_request"]
    assert reply.metadata == {"fallback": False}


def test_turn_limit_is_enforced(llm_server):
    agent = _agent(llm_server.url, max_turns=2)

    under = reply_of(agent, "I was charged twice", turn_count=1)
    over = reply_of(agent, "I was charged twice", turn_count=2)

    assert under.escalate is False
    assert (over.escalate, over.escalation_reason, over.text) == (
        True,
        "Turn limit reached (2 messages)",
        ESCALATION["turn_limit"],
    )


def test_angry_customer_escalates_like_with_the_rules(llm_server):
    # The model answers calmly and does not escalate; the shared policy still does.
    llm_server.answer({**MODEL_ANSWER, "intent": "complaint", "escalate": False})
    message = "Terrible support!!! I want to cancel"

    reply = reply_of(_agent(llm_server.url), message)

    assert (reply.intent, reply.escalate, reply.escalation_reason, reply.text) == (
        "complaint",
        True,
        "Angry complaint",
        ESCALATION["angry"],
    )
    assert rules_reply(message).escalation_reason == "Angry complaint"


def test_second_low_confidence_turn_escalates_like_with_the_rules(llm_server):
    llm_server.answer({**MODEL_ANSWER, "intent": "unknown", "confidence": 0.3})
    low = (
        TurnSnapshot(role="customer", content="blorp", intent="unknown", confidence=None),
        TurnSnapshot(role="agent", content="Sorry?", intent="unknown", confidence=0.2),
    )
    high = (low[0], TurnSnapshot(role="agent", content="Sure", intent="billing", confidence=0.9))

    after_low = reply_of(_agent(llm_server.url), "zxqv blorp wug", turn_count=1, recent=low)
    after_high = reply_of(_agent(llm_server.url), "zxqv blorp wug", turn_count=1, recent=high)

    assert (after_low.escalate, after_low.escalation_reason, after_low.text) == (
        True,
        "Two low-confidence turns in a row",
        ESCALATION["low_confidence"],
    )
    assert after_high.escalate is False
    assert rules_reply("zxqv blorp wug", turn_count=1, recent=low).escalate is True


def test_metadata_holds_only_the_fallback_flag(llm_server):
    llm_server.answer({**MODEL_ANSWER, "debug": "chain of thought", "prompt_tokens": 512})
    success = reply_of(_agent(llm_server.url), "I was charged twice")
    llm_server.answer("not json")
    failure = reply_of(_agent(llm_server.url), "I was charged twice")

    for reply in (success, failure):
        assert set(reply.metadata) == {"fallback"}
        public = json.dumps([reply.text, reply.escalation_reason, reply.metadata])
        assert SYSTEM_PROMPT[:60] not in public
        assert "chain of thought" not in public
        assert API_KEY not in public


def test_failure_is_logged_without_the_api_key(llm_server, caplog):
    llm_server.status = 401
    llm_server.body = json.dumps({"error": f"bad key {API_KEY}"}).encode()

    with caplog.at_level(logging.WARNING, logger="messaging.agent.llm"):
        reply_of(_agent(llm_server.url), "hi")

    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "HTTPStatusError" in record.getMessage()
    assert API_KEY not in caplog.text


def test_repr_hides_the_api_key():
    assert API_KEY not in repr(_agent("http://llm.invalid/v1"))


def test_name_is_public_identifier():
    assert OpenAICompatibleAgent.name == "llm"

"""POST /messages/process renders its body itself (core.schemas.rendered_json into ninja's
temporal response) instead of returning a dict that ninja validates against ProcessOut: the
same status, bytes and headers — the rate-limit headers and Idempotent-Replayed the view sets
on the temporal response included — as the ninja-validated path, on SQLite and PostgreSQL."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client

from accounts.models import User
from messaging import services
from messaging.schemas import MessageProcessIn, ProcessOut
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

PROCESS = "/api/v1/messages/process"


def _legacy_body(result: services.MessageSendResult) -> dict[str, Any]:
    """messaging.api.process_body as it was before the view rendered its own body."""
    return {
        "response": result.reply_text,
        "status": result.status,
        "conversation_id": result.conversation_id,
        "agent": result.agent,
        "intent": result.intent,
        "confidence": result.confidence,
        "metadata": {
            **result.public_metadata,
            "escalated": result.escalated,
            "escalation_id": result.escalation_id,
            "customer_message_id": result.customer_message_id,
            "customer_message_seq": result.customer_message_seq,
            "seq": result.reply_seq,
        },
        "turn_count": result.turn_count,
        "message_id": result.reply_id,
    }


def _legacy_process(
    request: HttpRequest,
    response: HttpResponse,
    payload: MessageProcessIn,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """The endpoint as it was: headers on the temporal response, the body as a dict that ninja
    validates against ProcessOut and renders into that response."""
    from accounts.auth import principal_of
    from core.request_context import CallContext
    from messaging.permissions import ensure_acting_for_self

    principal = principal_of(request)
    context = CallContext.from_request(request)
    ensure_acting_for_self(
        principal=principal, customer_id=payload.customer_id, read=False, context=context
    )
    result = services.message_send(
        customer=principal.user,
        conversation_id=payload.conversation_id,
        text=payload.message,
        idempotency_key=idempotency_key,
        context=context,
    )
    if result.rate is not None:
        result.rate.apply_headers(response)
    if result.replayed:
        response["Idempotent-Replayed"] = "true"
    return _legacy_body(result)


@pytest.fixture
def process_operations() -> list[Any]:
    from config.api import api
    from messaging.api import message_process

    operations = [
        operation
        for _path, operation in api.iter_operations()
        if operation.view_func is message_process
    ]
    assert operations
    return operations


@pytest.fixture
def legacy_process(monkeypatch: pytest.MonkeyPatch, process_operations: list[Any]) -> Any:
    """Serves the process route through the legacy body while in use (the same NinjaAPI,
    auth, body parsing and error handlers, only the operation's function swapped), with
    `message_send` answering what the new path's request got: a turn writes, so two real
    requests could never produce the same ids, counters and remaining rate."""

    @contextmanager
    def serving(result: services.MessageSendResult, expected: dict[str, Any]) -> Any:
        calls: list[dict[str, Any]] = []

        def same_result(**kwargs: Any) -> services.MessageSendResult:
            calls.append(kwargs)
            return result

        with monkeypatch.context() as patch:
            for operation in process_operations:
                patch.setattr(operation, "view_func", _legacy_process)
            patch.setattr(services, "message_send", same_result)
            yield
        assert len(calls) == 1
        assert {k: v for k, v in calls[0].items() if k != "context"} == expected

    return serving


@pytest.fixture
def same_response(monkeypatch: pytest.MonkeyPatch, legacy_process: Any) -> Any:
    """Sends the request through the new path (the real service), then the same request and
    the same service result through the legacy path, and asserts the two responses equal."""

    def send(client: Client, body: dict[str, Any], **headers: str) -> Any:
        seen: list[tuple[dict[str, Any], services.MessageSendResult]] = []
        real = services.message_send

        def recording(**kwargs: Any) -> services.MessageSendResult:
            result = real(**kwargs)
            seen.append(({k: v for k, v in kwargs.items() if k != "context"}, result))
            return result

        with monkeypatch.context() as patch:
            patch.setattr(services, "message_send", recording)
            new = client.post(PROCESS, body, content_type="application/json", headers=headers)
        assert new.status_code == 200, new.content
        ((kwargs, result),) = seen
        with legacy_process(result, kwargs):
            old = client.post(PROCESS, body, content_type="application/json", headers=headers)
        assert new.status_code == old.status_code == 200
        assert new["Content-Type"] == old["Content-Type"] == "application/json; charset=utf-8"
        assert new.content == old.content
        # Every header too, but the request's own id.
        assert {k: v for k, v in new.headers.items() if k != "X-Request-ID"} == {
            k: v for k, v in old.headers.items() if k != "X-Request-ID"
        }
        return new

    return send


def _body(customer: User, message: str, conversation_id: int | None) -> dict[str, Any]:
    return {"message": message, "customer_id": customer.pk, "conversation_id": conversation_id}


def test_legacy_path_really_validates_processout(
    customer: User,
    customer_client: Client,
    process_operations: list[Any],
    same_response: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The comparisons mean something only if the swap takes effect: the legacy view hands
    # ninja a dict (validated against ProcessOut), the new one the rendered HttpResponse.
    handed: list[type] = []
    for operation in process_operations:

        def spy(request: Any, result: Any, temporal: Any, original: Any = None) -> Any:
            handed.append(type(result))
            return original(request, result, temporal)  # type: ignore[misc]

        spy.__defaults__ = (operation._result_to_response,)
        monkeypatch.setattr(operation, "_result_to_response", spy)
    response = same_response(customer_client, _body(customer, "hello", None))
    assert handed == [HttpResponse, dict]
    assert response.json()["status"] == "success"


def test_normal_turn(customer: User, customer_client: Client, same_response: Any) -> None:
    conversation = ConversationFactory(customer=customer)
    MessageFactory(conversation=conversation)
    response = same_response(
        customer_client, _body(customer, "How do I reset my password? 🔑", conversation.pk)
    )
    body = response.json()
    assert body["status"] == "success"
    assert body["agent"] == "rule_based"
    assert isinstance(body["confidence"], float)
    assert response["RateLimit-Limit"] == "10"
    assert response["RateLimit-Remaining"] == "9"
    assert "RateLimit-Reset" in response
    assert "Idempotent-Replayed" not in response


def test_new_conversation(customer: User, customer_client: Client, same_response: Any) -> None:
    body = same_response(customer_client, _body(customer, 'Grüße — 日本語 "hi"', None)).json()
    assert body["turn_count"] == 1
    assert body["metadata"]["customer_message_seq"] == 1


def test_escalation(customer: User, customer_client: Client, same_response: Any) -> None:
    conversation = ConversationFactory(customer=customer)
    body = same_response(
        customer_client, _body(customer, "let me talk to a person", conversation.pk)
    ).json()
    assert body["status"] == "escalated"
    assert body["metadata"]["escalated"] is True
    assert isinstance(body["metadata"]["escalation_id"], int)


def test_escalated_conversations_acknowledgement(
    customer: User, customer_client: Client, same_response: Any
) -> None:
    first = customer_client.post(
        PROCESS, _body(customer, "I want a human", None), content_type="application/json"
    ).json()
    assert first["status"] == "escalated"
    conversation_id = first["conversation_id"]
    # The first message after the hand-off writes the acknowledgement; later ones answer with it.
    for text in ("are you there?", "hello?"):
        body = same_response(customer_client, _body(customer, text, conversation_id)).json()
        assert body["status"] == "escalated"
        assert body["agent"] == "system"
        assert body["intent"] is None
        assert body["confidence"] is None


def test_resolved_conversation_back_to_the_agent(
    customer: User, operator: User, customer_client: Client, same_response: Any
) -> None:
    from escalations.services import escalation_resolve

    first = customer_client.post(
        PROCESS, _body(customer, "I want a human", None), content_type="application/json"
    ).json()
    escalation_resolve(conversation_id=first["conversation_id"], actor=operator, notes="done")
    body = same_response(
        customer_client, _body(customer, "one more question", first["conversation_id"])
    ).json()
    assert body["status"] == "success"


def test_idempotent_replay(customer: User, customer_client: Client, same_response: Any) -> None:
    conversation = ConversationFactory(customer=customer)
    body = _body(customer, "I was charged twice", conversation.pk)
    first = same_response(customer_client, body, **{"Idempotency-Key": "key-1"})
    assert "Idempotent-Replayed" not in first
    again = same_response(customer_client, body, **{"Idempotency-Key": "key-1"})
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert again["RateLimit-Remaining"] == "8"


def test_headers_without_rate_limiting(
    settings: Any, customer: User, customer_client: Client, same_response: Any
) -> None:
    settings.RATELIMIT_ENABLE = False
    response = same_response(customer_client, _body(customer, "hello", None))
    assert "RateLimit-Limit" not in response


RESULTS = [
    {"confidence": 1, "intent": "other", "public_metadata": {"fallback": True}},
    {"confidence": 0.1 + 0.2, "intent": "billing", "public_metadata": {}},
    {"confidence": None, "intent": None, "public_metadata": {"note": "Grüße 😀 \u2028"}},
    {"confidence": 0.0, "intent": "greeting", "public_metadata": {"nested": {"a": [1, 2.5]}}},
]


@pytest.mark.parametrize("values", RESULTS)
@pytest.mark.parametrize("status", ["success", "escalated"])
def test_process_body_is_what_processout_gives(status: str, values: dict[str, Any]) -> None:
    """Values the HTTP tests cannot reach with the rule-based agent (an int confidence, any
    public metadata) render as ProcessOut validated them."""
    from config.api import api
    from messaging.api import process_body

    result = services.MessageSendResult(
        conversation_id=3,
        customer_message_id=10,
        customer_message_seq=5,
        reply_id=11,
        reply_seq=6,
        reply_text='Answer — 日本語 "q" \\ </script>',
        status=status,
        agent="rule_based",
        escalation_id=7 if status == "escalated" else None,
        turn_count=3,
        **values,
    )
    validated = ProcessOut.model_validate(_legacy_body(result)).model_dump()
    assert process_body(result) == validated
    assert api.renderer.render(None, process_body(result), response_status=200) == (  # type: ignore[arg-type]
        api.renderer.render(None, validated, response_status=200)  # type: ignore[arg-type]
    )

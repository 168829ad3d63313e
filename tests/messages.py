"""Sending a customer's message in tests: over REST (`post_message`, `sent`) or straight
through the service (`sent_directly`), one spelling each."""

from __future__ import annotations

from typing import Any

from django.test import Client

from accounts.models import User

PROCESS = "/api/v1/messages/process"

# A message's keys wherever one is sent (history, socket frames), written out here rather than
# read from the code so that a change to the shape fails the tests that pin it. `author_name`
# is additive: operator messages' display name (docs/inbox.md).
MESSAGE_KEYS = frozenset(
    ["id", "seq", "role", "content", "intent", "confidence", "created_at", "author_name"]
)


def post_message(
    client: Client,
    customer: User,
    text: str,
    conversation_id: int | None = None,
    **headers: str,
) -> Any:
    """`POST /messages/process` as `customer` (`client` holds whichever token the test wants)."""
    return client.post(
        PROCESS,
        {"message": text, "customer_id": customer.pk, "conversation_id": conversation_id},
        content_type="application/json",
        headers=headers,
    )


def sent(
    client: Client,
    customer: User,
    text: str,
    conversation_id: int | None = None,
    **headers: str,
) -> dict[str, Any]:
    """`post_message` that must succeed: its body."""
    response = post_message(client, customer, text, conversation_id, **headers)
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def sent_directly(
    customer: User, text: str, conversation_id: int | None = None, key: str | None = None
) -> dict[str, Any]:
    """The same turn through `message_send` itself (no HTTP), as the REST body shapes it."""
    from messaging.schemas import process_out
    from messaging.services import message_send

    result = message_send(
        customer=customer, conversation_id=conversation_id, text=text, idempotency_key=key
    )
    return process_out(result)

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Schema
from pydantic import Field, field_validator

from core.ids import Id, IdOrZero
from core.schemas import QueryIn, StrictIn, client_datetime
from messaging.models import MAX_ID
from messaging.validation import MAX_MESSAGE_CHARS, clean_message_text

# Message.metadata key holding an operator message's author display name.
AUTHOR_NAME = "author_name"


class MessageProcessIn(StrictIn):
    message: str = Field(
        description=f"1..{MAX_MESSAGE_CHARS} characters after trimming; no control characters "
        "other than newline and tab",
        max_length=MAX_MESSAGE_CHARS * 2,  # the exact rule is applied after trimming
    )
    customer_id: Id = Field(description="Must be the caller's own id")
    conversation_id: IdOrZero | None = Field(
        default=None, description="null or 0 starts a new conversation"
    )

    @field_validator("message")
    @classmethod
    def _clean(cls, value: str) -> str:
        return clean_message_text(value)


class ProcessOut(Schema):
    response: str
    status: Literal["success", "escalated"]
    conversation_id: int
    agent: str
    intent: str | None
    confidence: float | None = Field(ge=0, le=1)
    metadata: dict[str, Any]
    turn_count: int
    message_id: int


def author_name_of(role: str, metadata: Any) -> str | None:
    """`MessageOut.author_name`: stored with the message (no join on the history and websocket
    paths), and only an operator message has one. One rule for the schema and for
    messaging.fastpath's history rows, which build the same items without the schema."""
    if role != "operator":
        return None
    name = (metadata or {}).get(AUTHOR_NAME)
    return name if isinstance(name, str) else None


class MessageOut(Schema):
    id: int
    seq: int
    role: Literal["customer", "agent", "operator", "system"]
    content: str
    intent: str | None
    confidence: float | None
    created_at: datetime
    author_name: str | None = Field(
        default=None,
        description="Operator messages: the display name of the operator who wrote it, as it "
        "was when written; null for every other role",
    )

    @staticmethod
    def resolve_author_name(obj: Any) -> str | None:
        return author_name_of(obj.role, obj.metadata)


class HistoryOut(Schema):
    conversation_id: int
    messages: list[MessageOut]
    has_more: bool


class ConversationOut(Schema):
    id: int
    customer_id: int
    status: Literal["active", "escalated", "resolved"]
    created_at: datetime
    updated_at: datetime
    turn_count: int


class ConversationPageOut(Schema):
    items: list[ConversationOut]
    next_cursor: str | None


class HistoryParams(QueryIn):
    limit: int = Field(default=100, ge=1, le=1000)
    after_seq: int | None = Field(default=None, ge=0, le=MAX_ID)
    before_seq: int | None = Field(default=None, ge=1, le=MAX_ID)


def message_item(
    *,
    id: int,  # noqa: A002 - MessageOut's field name
    seq: int,
    role: str,
    content: str,
    intent: str | None,
    confidence: float | None,
    created_at: datetime,
    metadata: Any,
) -> dict[str, Any]:
    """A message as clients see it, from plain values: `MessageOut` key for key and in its
    order, with the values pydantic would give it (a role enum as its text, an int confidence
    as a float), except that `created_at` is still the datetime. The one builder of a message's
    client shape — history items (messaging.fastpath.history_page, rendered by ninja's encoder)
    and, through `message_payload`, websocket pushes and domain events — without a schema
    instance per message (tests/messaging/test_payloads.py proves it equal to MessageOut)."""
    return {
        "id": id,
        "seq": seq,
        "role": str(role),
        "content": content,
        "intent": intent,
        "confidence": None if confidence is None else float(confidence),
        "created_at": created_at,
        "author_name": author_name_of(role, metadata),
    }


def message_payload(message: Any) -> dict[str, Any]:
    """A message (a model instance, or anything with its attributes: messaging.fastpath's
    WrittenMessage) as clients see it outside a response body — websocket `message` event,
    domain event — encoded as API responses are (`created_at` as core.schemas.client_json
    would give it)."""
    item = message_item(
        id=message.id,
        seq=message.seq,
        role=message.role,
        content=message.content,
        intent=message.intent,
        confidence=message.confidence,
        created_at=message.created_at,
        metadata=message.metadata,
    )
    item["created_at"] = client_datetime(item["created_at"])
    return item


def message_event_data(
    payload: dict[str, Any], *, conversation_id: int, customer_id: int
) -> dict[str, Any]:
    """A `message.created` domain event's data: the message as clients see it
    (`message_payload`) and whose conversation it is."""
    return {**payload, "conversation_id": conversation_id, "customer_id": customer_id}

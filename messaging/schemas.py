from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from ninja import Schema
from pydantic import Field, field_validator

from core.ids import Id, IdOrZero
from core.schemas import QueryIn, StrictIn, client_datetime, schema_reader
from messaging.models import MAX_ID
from messaging.validation import MAX_MESSAGE_CHARS, clean_message_text

if TYPE_CHECKING:
    from messaging.services import MessageSendResult

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


# `POST /messages/process`'s body, read from the service's MessageSendResult (the resolvers say
# where a field comes from) for the OpenAPI document and the bytes alike (`process_out`). (No
# docstring: it would become the schema's description in the OpenAPI document.)
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

    @staticmethod
    def resolve_response(result: MessageSendResult) -> str:
        return result.reply_text

    @staticmethod
    def resolve_metadata(result: MessageSendResult) -> dict[str, Any]:
        # What the agent may show clients, then the turn's own facts (these win a clash).
        return {
            **result.public_metadata,
            "escalated": result.escalated,
            "escalation_id": result.escalation_id,
            "customer_message_id": result.customer_message_id,
            "customer_message_seq": result.customer_message_seq,
            "seq": result.reply_seq,
        }

    @staticmethod
    def resolve_message_id(result: MessageSendResult) -> int:
        return result.reply_id


# A message as clients see it: history items, the operator's reply, websocket `message` frames
# and `message.created` events (through `message_item` / `message_payload`).
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
    def resolve_author_name(message: Any) -> str | None:
        # Stored with the message (no join on the history and websocket paths), and only an
        # operator message has one.
        if message.role != "operator":
            return None
        name = (message.metadata or {}).get(AUTHOR_NAME)
        return name if isinstance(name, str) else None


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


# The bodies and payloads built on every request, read straight from typed values by the
# schemas above (core.schemas.schema_reader): the schemas stay the one listing of each shape.
process_out = schema_reader(ProcessOut)
history_out = schema_reader(HistoryOut)
_message_out = schema_reader(MessageOut)


def message_item(message: Any) -> dict[str, Any]:
    """A message (a model instance, or anything with its attributes: messaging.fastpath's
    WrittenMessage and history rows) as `MessageOut` gives it, `created_at` still a datetime
    (a response's renderer encodes it)."""
    return _message_out(message)


def message_payload(message: Any) -> dict[str, Any]:
    """A message as clients see it outside a response body — websocket `message` event, domain
    event — encoded as API responses are (`created_at` as core.schemas.client_json would give
    it)."""
    item = message_item(message)
    item["created_at"] = client_datetime(item["created_at"])
    return item


def message_event_data(
    payload: dict[str, Any], *, conversation_id: int, customer_id: int
) -> dict[str, Any]:
    """A `message.created` domain event's data: the message as clients see it
    (`message_payload`) and whose conversation it is."""
    return {**payload, "conversation_id": conversation_id, "customer_id": customer_id}

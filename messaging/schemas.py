from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Schema
from pydantic import Field, field_validator

from config.ids import Id, IdOrZero
from config.schemas import QueryIn, StrictIn, client_json
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


def message_payload(message: Any) -> dict[str, Any]:
    """A message as clients see it (history item, websocket `message` event)."""
    return client_json(MessageOut.from_orm(message))

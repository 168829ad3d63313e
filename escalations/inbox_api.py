"""REST routes of the operators' inbox (SPEC §4): internal notes (staff) and the customer's
rating of a resolved escalation. Mounted by config/api.py next to the routers with the same
prefixes (`/escalations`, `/conversations`): ninja keeps each router's paths apart, and none of
these paths exists in the other router."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import Field

from accounts.auth import authenticators, principal_of
from core.ids import PathId
from core.schemas import AUTHENTICATED_ERRORS, BODY_ERRORS, StrictIn, error_responses
from escalations import inbox
from escalations.models import InternalNote
from escalations.permissions import ESCALATION_MANAGERS
from messaging.permissions import MESSAGE_WRITERS

notes_router = Router(tags=["escalations"])
ratings_router = Router(tags=["ratings"])


class NoteIn(StrictIn):
    note: str = Field(
        description=f"1..{inbox.MAX_NOTE_CHARS} characters after trimming; staff only, never "
        "shown to the customer",
        max_length=inbox.MAX_NOTE_CHARS * 2,  # the exact rule is applied by the service
    )


class NoteOut(Schema):
    id: int
    author: str = Field(description="The author's display name")
    author_id: int | None
    note: str
    created_at: datetime

    @staticmethod
    def resolve_author(obj: InternalNote) -> str:
        return inbox.note_author_name(obj)


class NoteListOut(Schema):
    conversation_id: int
    items: list[NoteOut]


class RatingIn(StrictIn):
    score: int = Field(ge=inbox.RATING_MIN, le=inbox.RATING_MAX, strict=True)
    comment: str = Field(
        default="",
        description=f"Optional, at most {inbox.MAX_RATING_COMMENT_CHARS} characters",
        max_length=inbox.MAX_RATING_COMMENT_CHARS * 2,  # the exact rule is in the service
    )


class RatingOut(Schema):
    conversation_id: int
    escalation_id: int
    score: int
    comment: str
    created_at: datetime


@notes_router.post(
    "/{conversation_id}/notes",
    auth=authenticators(ESCALATION_MANAGERS),
    response={201: NoteOut, **error_responses(*AUTHENTICATED_ERRORS, 404, *BODY_ERRORS)},
    summary="Add an internal note (staff only; never reaches the customer)",
)
def note_add(request: HttpRequest, conversation_id: PathId, payload: NoteIn) -> Status[Any]:
    note = inbox.note_add(
        conversation_id=conversation_id, actor=principal_of(request).user, text=payload.note
    )
    return Status(201, note)


@notes_router.get(
    "/{conversation_id}/notes",
    auth=authenticators(ESCALATION_MANAGERS),
    response={200: NoteListOut, **error_responses(*AUTHENTICATED_ERRORS, 404, 422)},
    summary="A conversation's internal notes, oldest first",
)
def note_list(request: HttpRequest, conversation_id: PathId) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "items": inbox.note_list(conversation_id=conversation_id),
    }


@ratings_router.post(
    "/{conversation_id}/rating",
    auth=authenticators(MESSAGE_WRITERS),
    response={201: RatingOut, **error_responses(*AUTHENTICATED_ERRORS, 404, 409, *BODY_ERRORS)},
    summary="Rate your conversation's most recently resolved escalation (once)",
)
def rating_create(request: HttpRequest, conversation_id: PathId, payload: RatingIn) -> Status[Any]:
    rating = inbox.rating_create(
        customer=principal_of(request).user,
        conversation_id=conversation_id,
        score=payload.score,
        comment=payload.comment,
    )
    return Status(201, rating)

"""The operators' inbox beyond the hand-off lifecycle: internal notes, customer ratings (CSAT),
handing an escalation to a colleague, and the customer context beside the transcript.

One function per action, shared by the REST API (escalations/inbox_api.py) and the admin
(escalations/admin.py), like escalations.services.

Internal notes are their own table, never `Message` rows: history, the conversation socket,
exports and webhooks all read messages, so a note cannot reach the customer through any of
them. Nothing here publishes a note to a conversation's group.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Avg, Count

from accounts.models import User
from accounts.operators import operators
from core.errors import Conflict, NotFound, UnprocessableRequest
from escalations.models import Escalation, InternalNote, Rating
from escalations.permissions import ensure_can_handle_escalations
from escalations.selectors import Period
from messaging import events
from messaging.models import Conversation, is_possible_id
from messaging.services import conversation_lock
from messaging.validation import clean_text

MAX_NOTE_CHARS = 4000
MAX_RATING_COMMENT_CHARS = 1000
RATING_MIN, RATING_MAX = 1, 5


# --- Assigning to a colleague ------------------------------------------------------------------


def assignee_get(*, operator_id: int | None) -> User | None:
    """The colleague named by `operator_id` (None: the caller). Unknown ids, and accounts that
    are no operator (accounts.operators: customers, inactive accounts, staff outside the
    Operators group), are one 422: the caller must not learn which accounts exist and what
    they are from the difference."""
    if operator_id is None:
        return None
    user = operators().filter(pk=operator_id).first() if is_possible_id(operator_id) else None
    if user is None:
        raise UnprocessableRequest(
            "operator_id must be an operator who may handle escalations",
            loc=("body", "operator_id"),
        )
    return user


def colleagues_list() -> list[User]:
    """Colleagues who may handle escalations, for the admin's "assign to" select (the same rule
    the services apply to an assignee, so the select never offers a refusal)."""
    return list(operators().order_by("username"))


# --- Internal notes ----------------------------------------------------------------------------


def clean_note(text: Any) -> str:
    try:
        return clean_text(text, what="Note", max_chars=MAX_NOTE_CHARS)
    except ValueError as exc:
        raise UnprocessableRequest(str(exc), loc=("body", "note")) from None


def note_add(*, conversation_id: int, actor: User, text: str) -> InternalNote:
    """An operator's internal note on a conversation (attached to its current escalation, else
    its latest one). 404 when the conversation does not exist. Staff only; never published to
    the customer."""
    ensure_can_handle_escalations(actor)
    text = clean_note(text)
    conversation = (
        Conversation.objects.filter(pk=conversation_id).order_by().first()
        if is_possible_id(conversation_id)
        else None
    )
    if conversation is None:
        raise NotFound("Conversation not found")
    escalation = (
        Escalation.objects.filter(conversation=conversation).order_by("-created_at", "-id").first()
    )
    return InternalNote.objects.create(
        conversation=conversation, escalation=escalation, author=actor, note=text
    )


def note_list(*, conversation_id: int) -> list[InternalNote]:
    """A conversation's notes, oldest first; 404 when the conversation does not exist."""
    if not is_possible_id(conversation_id) or not (
        Conversation.objects.filter(pk=conversation_id).exists()
    ):
        raise NotFound("Conversation not found")
    return list(
        InternalNote.objects.filter(conversation_id=conversation_id)
        .select_related("author")
        .order_by("created_at", "id")
    )


def note_author_name(note: InternalNote) -> str:
    return note.author.public_name if note.author is not None else "(deleted user)"


# --- Ratings (CSAT) ----------------------------------------------------------------------------


def clean_rating(score: Any, comment: Any) -> tuple[int, str]:
    if (
        isinstance(score, bool)
        or not isinstance(score, int)
        or not (RATING_MIN <= score <= RATING_MAX)
    ):
        raise UnprocessableRequest(
            f"score must be an integer from {RATING_MIN} to {RATING_MAX}", loc=("body", "score")
        )
    try:
        comment = clean_text(
            comment or "", what="Comment", max_chars=MAX_RATING_COMMENT_CHARS, allow_empty=True
        )
    except ValueError as exc:
        raise UnprocessableRequest(str(exc), loc=("body", "comment")) from None
    return score, comment


def rating_create(*, customer: User, conversation_id: int, score: int, comment: str = "") -> Rating:
    """The customer rates their conversation's most recently resolved escalation, once.

    404: not the caller's conversation (or missing: indistinguishable). 409: nothing resolved
    yet, or that escalation is already rated. The conversation's row lock serialises two
    concurrent ratings; the one-to-one constraint is the backstop."""
    score, comment = clean_rating(score, comment)
    with transaction.atomic():
        conversation = conversation_lock(conversation_id=conversation_id)
        if conversation is None or conversation.customer_id != customer.pk:
            raise NotFound("Conversation not found")
        escalation = (
            Escalation.objects.filter(conversation=conversation, status=Escalation.Status.RESOLVED)
            .order_by("-resolved_at", "-id")
            .first()
        )
        if escalation is None:
            raise Conflict("This conversation has no resolved escalation to rate")
        if Rating.objects.filter(escalation=escalation).exists():
            raise Conflict("You already rated this conversation")
        try:
            with transaction.atomic():
                rating = Rating.objects.create(
                    conversation=conversation, escalation=escalation, score=score, comment=comment
                )
        except IntegrityError:
            raise Conflict("You already rated this conversation") from None
        events.domain_event_record(
            events.RATING_CREATED,
            {
                "conversation_id": conversation.pk,
                "customer_id": customer.pk,
                "escalation_id": escalation.pk,
                "score": score,
                "comment": comment,
                "created_at": rating.created_at.isoformat(),
            },
        )
        return rating


def csat_compute(*, period: Period | None = None) -> dict[str, Any]:
    """`csat_average` (mean score, 2 decimals; None without ratings) and `csat_responses`,
    over the ratings given in `period` (default: all)."""
    ratings = Rating.objects.filter(period.q()) if period else Rating.objects.all()
    figures = ratings.aggregate(average=Avg("score"), responses=Count("id"))
    average = figures["average"]
    return {
        "csat_average": None if average is None else round(float(average), 2),
        "csat_responses": figures["responses"],
    }


# --- The customer beside the transcript --------------------------------------------------------


@dataclass(frozen=True)
class CustomerContext:
    username: str
    email: str
    member_since: datetime
    other_conversations: list[Conversation]
    other_total: int


def customer_context(*, conversation: Conversation, limit: int = 10) -> CustomerContext:
    """Who the customer is and their other conversations (newest activity first)."""
    customer = conversation.customer
    others = Conversation.objects.filter(customer=customer).exclude(pk=conversation.pk)
    return CustomerContext(
        username=customer.get_username(),
        email=customer.email,
        member_since=customer.date_joined,
        other_conversations=list(others.order_by("-updated_at", "-id")[:limit]),
        other_total=others.count(),
    )

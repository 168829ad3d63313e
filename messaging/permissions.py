"""Who may read or write which conversation. Pure checks plus `ensure_*` wrappers that raise."""

from __future__ import annotations

from django.db.models import Q

from accounts.auth import Policy, Principal, Tier
from accounts.models import SecurityEvent
from accounts.operators import is_operator
from accounts.scopes import CONVERSATIONS_READ, ESCALATIONS_MANAGE, MESSAGES_WRITE
from accounts.security import security_event_record
from core.errors import PermissionDenied
from core.request_context import CallContext

# The policies of messaging's doors, shared by the REST routes (`authenticators(...)`) and the
# conversation socket (`accounts.sockets`), so both answer a missing scope the same way.
CONVERSATION_READERS = Policy(tier=Tier.CUSTOMER, scopes=(CONVERSATIONS_READ,))
MESSAGE_WRITERS = Policy(tier=Tier.CUSTOMER, scopes=(MESSAGES_WRITE,))


def can_read_any_conversation(principal: Principal) -> bool:
    """Operators (accounts.operators, on their current flags) holding escalations:manage read
    every conversation; staff outside the Operators group read only their own. The scope is
    checked first: a customer's request never costs the group lookup."""
    return principal.has_scope(ESCALATIONS_MANAGE) and is_operator(principal.user)


def conversations_of(customer_id: int | None) -> Q:
    """The ownership rule, written once: a conversation is its customer's. Every door applies it
    inside its query — the selectors through the ORM, the fixed statements of messaging.fastpath
    compiled from this same Q (core.fixedsql.where) — so someone else's conversation is simply
    not found (404, or close code 4404 on a socket), exactly like a missing one. None: every
    customer's (a reader who may read any conversation: `reader_scope`)."""
    return Q() if customer_id is None else Q(customer_id=customer_id)


def reader_scope(principal: Principal) -> int | None:
    """Whose conversations `principal` may read (`conversations_of`): everyone's for operators
    holding escalations:manage, otherwise their own. Writing is always their own."""
    return None if can_read_any_conversation(principal) else principal.user_id


def ensure_acting_for_self(
    *,
    principal: Principal,
    customer_id: int,
    read: bool,
    context: CallContext | None = None,
) -> None:
    """A `customer_id` in a path or body must be the caller's own; only staff reading may name
    another. Anything else is an IDOR attempt: 403 and a CRITICAL security event."""
    if customer_id == principal.user_id:
        return
    if read and can_read_any_conversation(principal):
        return
    security_event_record(
        kind=SecurityEvent.Kind.IDOR_ATTEMPT,
        context=context,
        user=principal.user,
        detail={"customer_id": customer_id, "read": read},
    )
    raise PermissionDenied("You may only act on your own conversations")

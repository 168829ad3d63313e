"""Single-use tickets for the admin's live channel (SPEC §7).

The admin pages authenticate with Django's session cookie, which websockets here never read
and which the API never accepts. A page that wants live events POSTs (same origin, CSRF
token) to an admin URL and receives a ticket: 256 random bits, valid for TICKET_TTL_SECONDS,
bound to the operator and their session. The page sends it as the socket's first frame
(`{"type": "auth", "ticket": ...}`); consuming it deletes it from the shared cache, and only the
caller whose delete removed the key may use it, so a ticket works once even when two sockets
race with it. Only a hash of the ticket is stored.

A ticket is never a credential on the REST API: the API's authenticators read bearer tokens
and API keys only.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.core.cache import cache
from django.utils.crypto import constant_time_compare

from accounts.models import User
from accounts.operators import is_operator
from accounts.scopes import allowed_scopes

TICKET_TTL_SECONDS = 30
MAX_TICKET_CHARS = 128
_CACHE_PREFIX = "admin-ticket:"
# How the admin sign-in of a session was proven, as a token's `amr`: ["pwd"] or ["pwd", "otp"]
# (set by the admin's login and second-factor pages, config.admin_site).
AMR_SESSION_KEY = "parley_amr"


@dataclass(frozen=True)
class AdminSession:
    """What a consumed ticket proves: this operator, through this admin session."""

    user: User
    session_key: str
    scopes: frozenset[str]
    amr: tuple[str, ...] = ("pwd",)


def _cache_key(ticket: str) -> str:
    return _CACHE_PREFIX + hashlib.sha256(ticket.encode("utf-8", "surrogatepass")).hexdigest()


def admin_ticket_issue(*, user: User, session_key: str | None) -> str:
    """A fresh ticket for a signed-in operator (accounts.operators). Raises PermissionError
    otherwise (the admin view has already required staff; this keeps any other caller honest)."""
    if not (session_key and is_operator(user)):
        raise PermissionError("Tickets are for operators signed in to the admin")
    ticket = secrets.token_urlsafe(32)
    cache.set(
        _cache_key(ticket),
        {
            "user_id": user.pk,
            "session_key": session_key,
            "expires_at": time.time() + TICKET_TTL_SECONDS,
        },
        timeout=TICKET_TTL_SECONDS,
    )
    return ticket


def admin_ticket_consume(ticket: Any) -> AdminSession | None:
    """Redeem a ticket once. None when it is malformed, unknown, already used, expired, or
    its user is no longer an operator signed in with that session."""
    if not isinstance(ticket, str) or not 0 < len(ticket) <= MAX_TICKET_CHARS:
        return None
    key = _cache_key(ticket)
    data = cache.get(key)
    # delete() reports whether this call removed the key: of two racing consumers exactly one
    # sees True (locmem and Redis alike), and only that one may proceed.
    if not isinstance(data, dict) or not cache.delete(key):
        return None
    if float(data.get("expires_at", 0)) < time.time():
        return None
    return admin_session_check(user_id=int(data["user_id"]), session_key=str(data["session_key"]))


def admin_session_check(*, user_id: int, session_key: str) -> AdminSession | None:
    """The user, re-read, if they are still an operator and still signed in with that admin
    session (not logged out, password unchanged). Used when the ticket is redeemed and on each
    re-validation of the socket, so logging out or demotion ends the live channel."""
    user = User.objects.filter(pk=user_id).first()
    if user is None or not is_operator(user):
        return None
    engine = import_module(settings.SESSION_ENGINE)
    session = engine.SessionStore(session_key)
    if str(session.get(SESSION_KEY)) != str(user.pk) or not session.get(BACKEND_SESSION_KEY):
        return None
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash or not constant_time_compare(session_hash, user.get_session_auth_hash()):
        return None
    amr = session.get(AMR_SESSION_KEY)
    return AdminSession(
        user=user,
        session_key=session_key,
        scopes=allowed_scopes(user),
        amr=tuple(amr) if isinstance(amr, list) and amr else ("pwd",),
    )

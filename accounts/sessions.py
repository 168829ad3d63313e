"""Sessions: one per sign-in, i.e. per refresh-token family (docs/security.md, "Sessions").

A session row is written when a sign-in issues its first token pair and touched by every
refresh. Revoking one adds its family to `RevokedTokenFamily` — which the one authentication
statement of every request already reads (accounts.fastauth) and every refresh checks — so its
refresh and access tokens stop at once, and its sockets are told to re-check (they close 4401).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import RevokedTokenFamily, SecurityEvent, SignInSession, User
from accounts.security import security_event_record
from accounts.socket_events import user_sockets_recheck_on_commit
from accounts.tokens import FAMILY_CLAIM, password_fingerprint
from core.errors import NotFound
from core.request_context import CallContext

USER_AGENT_MAX = 256


def session_start(
    *,
    user: User,
    family: str,
    amr: tuple[str, ...],
    expires_at: datetime,
    ip: str | None = None,
    user_agent: str = "",
) -> SignInSession:
    """Record a sign-in's token family."""
    now = timezone.now()
    return SignInSession.objects.create(
        family=family,
        user=user,
        created_at=now,
        last_used_at=now,
        expires_at=expires_at,
        ip=ip,
        user_agent=_printable(user_agent)[:USER_AGENT_MAX],
        amr=list(amr),
    )


def _printable(text: str) -> str:
    # A header is latin-1 bytes from the client: keep what a person can read, nothing a
    # database or a log refuses (NUL, other controls, lone surrogates).
    return "".join(ch for ch in text if ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF)


def session_touch(*, family: str, expires_at: datetime, ip: str | None = None) -> None:
    """A refresh of the family: last use now, and the life of its newest refresh token."""
    changes: dict[str, Any] = {"last_used_at": timezone.now(), "expires_at": expires_at}
    if ip:
        changes["ip"] = ip
    SignInSession.objects.filter(family=family).update(**changes)


def session_over(*, family: str, now: datetime | None = None) -> bool:
    """Whether the session of `family` has reached its absolute lifetime (SESSION_MAX_DAYS
    after its sign-in), however recently it was refreshed. A family without a session row
    (tokens minted outside a sign-in) is bounded by its refresh tokens alone."""
    started = (
        SignInSession.objects.filter(family=family).values_list("created_at", flat=True).first()
    )
    if started is None:
        return False
    return (now or timezone.now()) >= started + timedelta(days=settings.SESSION_MAX_DAYS)


def session_list_for_user(*, user: User) -> list[SignInSession]:
    """The user's sessions that can still be used: not revoked, not expired."""
    return list(
        SignInSession.objects.filter(
            user=user, revoked_at__isnull=True, expires_at__gt=timezone.now()
        ).order_by("-last_used_at", "-id")
    )


def session_password_carried(*, payload: Mapping[str, Any], user: User) -> bool:
    """True when the token's session made the user's latest password change itself
    (`password_change`): its tokens predate the new password but stay valid. Only asked when the
    token's password fingerprint is stale, i.e. never on an ordinary request."""
    family = payload.get(FAMILY_CLAIM)
    if not isinstance(family, str):
        return False
    return SignInSession.objects.filter(
        family=family,
        user=user,
        revoked_at__isnull=True,
        password_fingerprint=password_fingerprint(user),
    ).exists()


def session_revoke(*, user: User, session_id: int, context: CallContext | None = None) -> None:
    """Revoke one of `user`'s sessions. Someone else's (or no such) session: NotFound, and
    nothing changes."""
    session = (
        SignInSession.objects.filter(pk=session_id, user=user, revoked_at__isnull=True)
        .filter(expires_at__gt=timezone.now())
        .first()
    )
    if session is None:
        raise NotFound("Session not found")
    sessions_revoke(user=user, sessions=[session], context=context, reason="revoked by the user")


def sessions_revoke_others(
    *,
    user: User,
    keep_family: str | None,
    context: CallContext | None = None,
    reason: str = "revoked by the user",
) -> int:
    """Revoke every session of `user` but the one of `keep_family` (None: all). Returns how
    many were revoked."""
    sessions = SignInSession.objects.filter(user=user, revoked_at__isnull=True)
    if keep_family is not None:
        sessions = sessions.exclude(family=keep_family)
    return sessions_revoke(user=user, sessions=list(sessions), context=context, reason=reason)


def sessions_revoke(
    *,
    user: User,
    sessions: Iterable[SignInSession],
    context: CallContext | None = None,
    reason: str,
) -> int:
    """Deny-list each session's family (its refresh and access tokens stop at once), mark it
    revoked, record it, and ask the user's sockets to re-check after commit."""
    sessions = list(sessions)
    if not sessions:
        return 0
    now = timezone.now()
    with transaction.atomic():
        for session in sessions:
            RevokedTokenFamily.objects.get_or_create(
                family=session.family,
                defaults={"user_id": user.pk, "expires_at": max(session.expires_at, now)},
            )
        SignInSession.objects.filter(pk__in=[s.pk for s in sessions]).update(revoked_at=now)
        for session in sessions:
            security_event_record(
                kind=SecurityEvent.Kind.SESSION_REVOKED,
                context=context,
                user=user,
                detail={"session_id": session.pk, "reason": reason},
            )
        user_sockets_recheck_on_commit(user.pk)
    return len(sessions)

"""Security events (docs/api.md): one JSON log line each, and a stored row superusers browse.

Its own module, below `accounts.auth` and `accounts.services`, so every layer that refuses a
request (auth, rate limits, permissions, sockets, the admin login) records through one function
without an import cycle.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, Subquery
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import SecurityEvent, User
from core.request_context import CallContext, current_request_id
from core.text import unstorable_reason

security_logger = logging.getLogger("parley.security")

# --- Security events ------------------------------------------------------------------------

_EVENT_LEVELS = {
    SecurityEvent.Kind.IDOR_ATTEMPT: logging.CRITICAL,
    SecurityEvent.Kind.TOKEN_REVOKED: logging.INFO,
}
# Every event is logged. Stored rows are bounded per kind and caller (the user when known,
# else the client IP) and minute: at most STORED_EVENTS_PER_MINUTE rows, then one marker row
# saying further events are only logged until the minute ends. A customer probing other
# customers' ids, or a scanner failing sign-in, cannot grow the table at request rate.
STORED_EVENTS_PER_MINUTE = 10


def security_event_record(
    *,
    kind: str,
    request: HttpRequest | None = None,
    context: CallContext | None = None,
    user: User | None = None,
    path: str | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Log a security event as a JSON line and store it for the admin. Never raises: a failure
    to record must not turn a refused request into a 500."""
    try:
        if request is not None:
            context = CallContext.from_request(request)
        if context is not None:
            path = path or context.path
            ip = ip or context.ip
        level = _EVENT_LEVELS.get(kind, logging.WARNING)  # type: ignore[call-overload]
        user_id = user.pk if user is not None else None
        request_id = current_request_id() or ""
        # Refused input is often hostile: what it carried is stored, but never in a form the
        # database refuses (NUL) or the log cannot encode (lone surrogates).
        path = _storable(path or "")[:512]
        detail = _storable(detail or {})
        security_logger.log(
            level,
            "security event: %s",
            kind,
            extra={
                "event": str(kind),
                "user_id": user_id,
                "client_ip": ip,
                "path": path,
                "detail": detail,
            },
        )
        allowance = _storage_allowance(str(kind), user_id, ip)
        if allowance == "drop":
            return
        if allowance == "marker":
            detail = {
                **detail,
                "throttled": (
                    f"more than {STORED_EVENTS_PER_MINUTE} '{kind}' events from this caller "
                    "this minute: the rest are logged, not stored"
                ),
            }
        # In a savepoint of its own, so a refused write never breaks the caller's transaction;
        # the user by a subquery, so an account deleted since the caller loaded it (a
        # principal of a user removed meanwhile, a refresh token outliving its account) is
        # recorded as no user instead of a foreign key the commit would refuse.
        with transaction.atomic():
            SecurityEvent.objects.create(
                kind=kind,
                level=logging.getLevelName(level),
                user_id=_existing_user(user_id),
                ip=ip,
                path=path,
                request_id=request_id[:128],
                detail=detail,
            )
    except Exception:  # noqa: BLE001 - recording must never fail the request
        security_logger.exception("could not record security event %s", kind)


def _existing_user(user_id: int | None) -> Subquery | None:
    """`user_id` if that account still exists when the row is written, else NULL."""
    if user_id is None:
        return None
    return Subquery(User.objects.filter(pk=user_id).values("pk")[:1])


def _storable(value: Any) -> Any:
    """`value` with every string the text rule refuses replaced by its escaped form."""
    if isinstance(value, str):
        if unstorable_reason(value) is None:
            return value
        return value.encode("unicode_escape", "backslashreplace").decode("ascii")
    if isinstance(value, dict):
        return {_storable(str(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    return value


def _storage_allowance(kind: str, user_id: int | None, ip: str | None) -> str:
    """ "store", "marker" (the first event past the limit) or "drop", per kind, caller and
    minute, counted in the shared cache (Redis in production: one budget for all workers)."""
    subject = f"u{user_id}" if user_id is not None else f"ip{ip or '-'}"
    minute = int(timezone.now().timestamp() // 60)
    count = cache_count(f"secevt:{kind}:{subject}:{minute}", timeout=120)
    if count <= STORED_EVENTS_PER_MINUTE:
        return "store"
    return "marker" if count == STORED_EVENTS_PER_MINUTE + 1 else "drop"


# `detail` keys whose value is a user's id (the subject of an IDOR probe, an API key's owner).
_USER_ID_KEYS = frozenset({"user_id", "customer_id", "owner_id", "operator_id", "actor_id"})
ERASED = "(erased)"


def security_events_scrub(*, user: User) -> int:
    """Erasure (accounts.data_rights): the stored events that name `user` keep their rows — the
    record of what happened — but nothing that identifies them: no user link, and no username,
    email or id of theirs anywhere in `detail`. An event names them by its user, or in its
    detail: failed sign-ins store the account name they tried (whoever tried it), an IDOR probe
    the customer id it aimed at. Returns how many rows were scrubbed. Runs inside the erasure's
    transaction, before the user row goes."""
    names = {value.casefold() for value in (user.username, user.email) if value}
    mentions = Q(user_id=user.pk)
    for key in ("username", "email"):
        for value in (user.username, user.email):
            if value:
                mentions |= Q(**{f"detail__{key}__iexact": value})
    for key in _USER_ID_KEYS:
        mentions |= Q(**{f"detail__{key}": user.pk})
    scrubbed = []
    for event in SecurityEvent.objects.filter(mentions).order_by().iterator(chunk_size=500):
        if event.user_id == user.pk:
            event.user = None
        event.detail = _without_identity(event.detail, names=names, user_id=user.pk)
        scrubbed.append(event)
    SecurityEvent.objects.bulk_update(scrubbed, ["user", "detail"], batch_size=500)
    return len(scrubbed)


def _without_identity(value: Any, *, names: set[str], user_id: int, key: str = "") -> Any:
    if isinstance(value, dict):
        return {
            k: _without_identity(v, names=names, user_id=user_id, key=k) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_without_identity(v, names=names, user_id=user_id, key=key) for v in value]
    if isinstance(value, str) and value.casefold() in names:
        return ERASED
    if key in _USER_ID_KEYS and value == user_id and not isinstance(value, bool):
        return None
    return value


def cache_count(key: str, *, timeout: int) -> int:
    """Add one to the shared-cache counter `key` (created with `timeout` seconds to live) and
    return its new value; atomic on Redis and locmem alike."""
    if cache.add(key, 1, timeout=timeout):
        return 1
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        return 1


def security_events_prune(*, now: datetime | None = None) -> int:
    """Delete stored events older than SECURITY_EVENT_RETENTION_DAYS (the log keeps them as
    long as the log is kept). Returns the number of rows deleted."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.SECURITY_EVENT_RETENTION_DAYS)
    deleted, _ = SecurityEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted

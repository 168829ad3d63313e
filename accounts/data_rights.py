"""A customer's data rights: export everything that is theirs, and erase them.

Accounts knows no conversations (layers point down), so the apps above plug in from their
`AppConfig.ready()`: an export contributor adds a section to the export, an erasure hook runs
inside the erasure's transaction before the user row is deleted (e.g. to disconnect websocket
subscribers after commit). Deleting the `User` then removes everything that references it by
foreign key (CASCADE), or detaches it (SET_NULL: security events keep their rows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts.models import ApiKey, SecurityEvent, User
from accounts.security import security_event_record, security_events_scrub
from core.errors import Conflict
from core.request_context import CallContext

ExportContributor = Callable[[User], dict[str, Any]]
ErasureHook = Callable[[User], None]

_contributors: list[ExportContributor] = []
_hooks: list[ErasureHook] = []


def export_contributor_register(fn: ExportContributor) -> None:
    """`fn(user)` returns sections to merge into the export (e.g. {"conversations": [...]})."""
    if fn not in _contributors:
        _contributors.append(fn)


def erasure_hook_register(fn: ErasureHook) -> None:
    """`fn(user)` runs inside the erasure transaction, before the user row is deleted."""
    if fn not in _hooks:
        _hooks.append(fn)


def user_export(user: User) -> dict[str, Any]:
    """Everything Parley holds about `user` that is theirs to see."""
    export: dict[str, Any] = {
        "profile": {
            "id": user.pk,
            "username": user.username,
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "date_joined": user.date_joined,
            "last_login": user.last_login,
        },
        "api_keys": [
            {
                "name": key.name,
                "prefix": key.prefix,
                "scopes": key.scopes,
                "created_at": key.created_at,
                "expires_at": key.expires_at,
                "revoked_at": key.revoked_at,
                "last_used_at": key.last_used_at,
            }
            for key in ApiKey.objects.filter(owner=user).order_by("created_at", "id")
        ],
    }
    for contributor in _contributors:
        export.update(contributor(user))
    return export


def user_erase(*, user: User, actor: User | None, context: CallContext | None = None) -> None:
    """Delete `user` and everything that is theirs, in one transaction. Staff accounts are not
    erased this way (409): their names are on other people's conversations, and removing an
    operator is an administrative act done in the admin."""
    if user.is_staff or user.is_superuser:
        raise Conflict("Staff accounts cannot be erased through the API")
    erased_id = user.pk
    actor_id = actor.pk if actor is not None else None  # read before delete() clears pks
    with transaction.atomic():
        for hook in _hooks:
            hook(user)
        # simplejwt keeps issued refresh tokens with SET_NULL; they name the user in their
        # payload, so they go too (their blacklist entries cascade).
        OutstandingToken.objects.filter(user=user).delete()
        # Security events stay, anonymous: no user link, no username, email or id in detail.
        security_events_scrub(user=user)
        user.delete()
        security_event_record(
            kind=SecurityEvent.Kind.ACCOUNT_ERASED,
            context=context,
            user=None,
            detail={
                "erased_user_id": erased_id,
                "actor_id": actor_id,
                "self_service": actor_id == erased_id,
            },
        )

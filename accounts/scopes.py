"""OAuth-style scopes and which roles may hold them (docs/api.md, Conventions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accounts.models import User

CONVERSATIONS_READ = "conversations:read"
MESSAGES_WRITE = "messages:write"
ESCALATIONS_MANAGE = "escalations:manage"
STATS_READ = "stats:read"
ADMIN = "admin"

ALL_SCOPES: tuple[str, ...] = (
    CONVERSATIONS_READ,
    MESSAGES_WRITE,
    ESCALATIONS_MANAGE,
    STATS_READ,
    ADMIN,
)

SCOPE_DESCRIPTIONS: dict[str, str] = {
    CONVERSATIONS_READ: "Read your conversations and their history",
    MESSAGES_WRITE: "Send messages",
    ESCALATIONS_MANAGE: "Staff: handle escalations, read any conversation",
    STATS_READ: "Staff: statistics",
    ADMIN: "Superusers: API keys and security events",
}

_EVERYONE = frozenset({CONVERSATIONS_READ, MESSAGES_WRITE})
_STAFF = _EVERYONE | {ESCALATIONS_MANAGE, STATS_READ}
_SUPERUSER = _STAFF | {ADMIN}


def allowed_scopes(user: User) -> frozenset[str]:
    """What the user's *current* role allows. Re-evaluated on every request, so demoting a
    user shrinks the effective scopes of tokens and keys already issued."""
    if not user.is_active:
        return frozenset()
    if user.is_superuser:
        return _SUPERUSER
    if user.is_staff:
        return _STAFF
    return _EVERYONE


def without_staff_scopes(scopes: frozenset[str]) -> frozenset[str]:
    """`scopes` narrowed to what any account may hold (a staff token without its second
    factor, accounts.auth)."""
    return scopes & _EVERYONE


def parse_scope_string(scope: str | None) -> set[str]:
    return {part for part in (scope or "").split() if part}


def grant_scopes(user: User, requested: set[str] | None) -> frozenset[str]:
    """requested ∩ allowed; no request (None) means everything the role allows. A request none
    of whose scopes are allowed yields an empty grant, never a wider one."""
    allowed = allowed_scopes(user)
    if requested is None:
        return allowed
    return allowed & frozenset(requested)


def format_scopes(scopes: frozenset[str] | set[str]) -> str:
    # A stable order keeps tokens and responses predictable.
    return " ".join(s for s in ALL_SCOPES if s in scopes)

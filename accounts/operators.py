"""Who is an operator: the one rule behind every staff door.

An operator is an active account that is a superuser, or staff in the `Operators` group. Staff
outside the group may sign in to the admin (to manage what their own permissions allow), but
they are no operator anywhere: every staff REST route and staff socket refuses them, reads
included (`accounts.auth.Policy` for `Tier.STAFF`), they read no one else's conversation, the
admin shows them no escalation, conversation or statistics page, they get no live-channel
ticket, no display name, and no escalation can be handed to them.

`is_operator` answers for one user (REST, sockets, admin, services); `operators()` is the same
rule as a query, for lists and lookups (the "assign to" select, `operator_id` in a request).
tests/accounts/test_operators.py holds the two to the same answers.
"""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef, Q, QuerySet

from accounts.models import User

OPERATORS_GROUP = "Operators"

# Cached on the user object for the rest of its life (one request, one socket check): staff
# routes ask more than once per request (the route's policy, then the service).
_CACHE_ATTRIBUTE = "_parley_in_operators_group"


def is_operator(user: User) -> bool:
    """Active, and a superuser or staff in the Operators group (its *current* flags: a demoted
    or deactivated operator stops being one on the next request or socket re-check)."""
    if not (user.is_authenticated and user.is_active):
        return False
    if user.is_superuser:
        return True
    if not user.is_staff:
        return False
    member = getattr(user, _CACHE_ATTRIBUTE, None)
    if member is None:
        member = user.groups.filter(name=OPERATORS_GROUP).exists()
        setattr(user, _CACHE_ATTRIBUTE, member)
    return bool(member)


def operators() -> QuerySet[User]:
    """Every operator, as one query (the rule of `is_operator`)."""
    in_group = Exists(
        User.groups.through.objects.filter(
            user_id=OuterRef("pk"),
            group_id__in=Group.objects.filter(name=OPERATORS_GROUP).values("pk"),
        )
    )
    return User.objects.filter(
        Q(is_active=True) & (Q(is_superuser=True) | (Q(is_staff=True) & in_group))
    )

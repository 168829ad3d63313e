"""What operators may do in the admin, and the checks the operator screens share.

Operators are staff who are not superusers. Their Django permissions come from the `Operators`
group (created by migration 0002 and kept in step by `operators_group_ensure`): they view
escalations, conversations and messages, and "change" escalations — which in Parley only means
running the services (assign, reply, resolve); every field stays read-only in the admin.
`can_handle_escalations` is that rule in one place; the REST API reaches it through the
services, so a staff account outside the group is refused at every door alike.
"""

from __future__ import annotations

from django.contrib.auth.models import Permission
from django.db.models import Q, QuerySet

from accounts.auth import Policy, Tier
from accounts.models import User
from accounts.scopes import ESCALATIONS_MANAGE
from core.errors import PermissionDenied

OPERATORS_GROUP = "Operators"

# Who may call the staff routes and watch /ws/escalations/ (tier and token scope). Acting on an
# escalation also needs `can_handle_escalations`, checked by the services.
ESCALATION_MANAGERS = Policy(tier=Tier.STAFF, scopes=(ESCALATIONS_MANAGE,))

# (app_label, codename). Migration 0002 holds a frozen copy; a test keeps the two in step.
OPERATOR_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("escalations", "view_escalation"),
    ("escalations", "change_escalation"),
    ("messaging", "view_conversation"),
    ("messaging", "view_message"),
)


def can_handle_escalations(user: User) -> bool:
    """The one definition of "operator", for every door (REST through the services, the admin,
    the services themselves): an active staff account holding `escalations.change_escalation`
    — through the Operators group, or as a superuser (who holds every permission). Staff
    outside the group may still sign in to the admin, but handle no escalation anywhere."""
    return bool(user.is_active and user.is_staff and user.has_perm("escalations.change_escalation"))


def ensure_can_handle_escalations(user: User) -> None:
    """Raise PermissionDenied (403) unless `user` may assign, reply to and resolve escalations."""
    if not can_handle_escalations(user):
        raise PermissionDenied("Only operators can handle escalations")


def operators_queryset() -> QuerySet[User]:
    """Every account `can_handle_escalations` accepts, as one query: the operators routing
    considers and `GET /operators` lists. The queryset twin of the predicate above (a test
    keeps the two in step); when the deployment's one "operator" predicate changes, both
    change here."""
    granted = Permission.objects.filter(
        content_type__app_label="escalations", codename="change_escalation"
    )
    return (
        User.objects.filter(is_active=True, is_staff=True)
        .filter(
            Q(is_superuser=True)
            | Q(groups__permissions__in=granted)
            | Q(user_permissions__in=granted)
        )
        .distinct()
    )

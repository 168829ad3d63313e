"""What operators may do in the admin, and the checks the operator screens share.

"Operator" is one rule, `accounts.operators.is_operator`: an active superuser, or active staff in
the `Operators` group. The group's Django permissions (created by migration 0002 and kept in
step by `operators_group_ensure`) let its members view escalations, conversations and messages,
and "change" escalations — which in Parley only means running the services (assign, reply,
resolve); every field stays read-only in the admin. The REST routes (`Tier.STAFF`), the sockets,
the admin and the services all ask the same predicate, so a staff account outside the group is
refused at every door alike, reads included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from accounts.auth import Policy, Tier
from accounts.operators import OPERATORS_GROUP, is_operator
from accounts.scopes import ESCALATIONS_MANAGE
from core.errors import PermissionDenied

if TYPE_CHECKING:
    from accounts.models import User

__all__ = [
    "ESCALATION_MANAGERS",
    "OPERATORS_GROUP",
    "OPERATOR_PERMISSIONS",
    "can_handle_escalations",
    "ensure_can_handle_escalations",
    "is_operator",
]

# Who may call the staff routes and watch /ws/escalations/: operators (Tier.STAFF) whose token
# holds escalations:manage. The services check `is_operator` again for callers that are not
# routes (the admin, other services).
ESCALATION_MANAGERS = Policy(tier=Tier.STAFF, scopes=(ESCALATIONS_MANAGE,))

# (app_label, codename). Migration 0002 holds a frozen copy; a test keeps the two in step.
OPERATOR_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("escalations", "view_escalation"),
    ("escalations", "change_escalation"),
    ("messaging", "view_conversation"),
    ("messaging", "view_message"),
)


# The operator rule under the name the escalation code has always used for it: the same
# function object, not a second rule.
can_handle_escalations = is_operator


def ensure_can_handle_escalations(user: User) -> None:
    """Raise PermissionDenied (403) unless `user` is an operator (`is_operator`)."""
    if not is_operator(user):
        raise PermissionDenied("Only operators can handle escalations")

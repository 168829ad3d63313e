"""What operators may do in the admin, and the checks the operator screens share.

Operators are staff who are not superusers. Their Django permissions come from the `Operators`
group (created by migration 0002 and kept in step by `operators_group_ensure`): they view
escalations, conversations and messages, and "change" escalations — which in Parley only means
running the services (assign, reply, resolve); every field stays read-only in the admin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accounts.models import User

OPERATORS_GROUP = "Operators"

# (app_label, codename). Migration 0002 holds a frozen copy; a test keeps the two in step.
OPERATOR_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("escalations", "view_escalation"),
    ("escalations", "change_escalation"),
    ("messaging", "view_conversation"),
    ("messaging", "view_message"),
)


def can_work_escalations(user: User) -> bool:
    """May run the escalation services from the admin (assign, reply, resolve): an active staff
    account holding `escalations.change_escalation` (through the Operators group, or as a
    superuser)."""
    return bool(user.is_active and user.is_staff and user.has_perm("escalations.change_escalation"))

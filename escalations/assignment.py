"""Auto-assignment's choice of operator (ASSIGNMENT_MODE=auto), made race-free.

The rule: the online operator with the fewest open assigned escalations below their capacity;
ties go to the one who has waited longest since their last assignment (never assigned first),
then the lowest id.

Why it cannot over-fill anyone. The choice runs inside the assigning transaction, after the
conversation's row lock, and first locks the profile rows of every candidate (in id order, so
two choosers never deadlock; `SELECT … FOR UPDATE`). Every assignment to an operator — auto or
by hand — updates that operator's profile row (`last_assigned_at`) in its own transaction, so
a second chooser waits for the first to commit and then counts what it committed (READ
COMMITTED: each statement sees the latest commits). On SQLite every write transaction holds
the database's write lock from BEGIN (IMMEDIATE), which serialises choosers just the same.

Lock order everywhere: conversation → escalation → operator profiles. Nothing locks a profile
and then a conversation, so the order cannot cycle.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from accounts.models import User
from escalations.models import OperatorProfile
from escalations.operators import capacity_of, online_operator_ids, open_assigned_counts

_NEVER = datetime.min.replace(tzinfo=timezone.get_fixed_timezone(0))


def operator_pick() -> User | None:
    """The operator the next escalation goes to, or None when nobody online has room. Call
    inside the assigning transaction (it takes row locks held until commit)."""
    candidates = online_operator_ids()
    if not candidates:
        return None
    OperatorProfile.objects.bulk_create(
        [OperatorProfile(user_id=user_id) for user_id in candidates], ignore_conflicts=True
    )
    profiles = list(
        OperatorProfile.objects.select_for_update().filter(user_id__in=candidates).order_by("pk")
    )
    counts = open_assigned_counts(candidates)
    best: tuple[int, datetime, int] | None = None
    for profile in profiles:
        if profile.away:  # chose away since the presence read
            continue
        load = counts.get(profile.pk, 0)
        if load >= capacity_of(profile):
            continue
        key = (load, profile.last_assigned_at or _NEVER, profile.pk)
        if best is None or key < best:
            best = key
    if best is None:
        return None
    return User.objects.get(pk=best[2])


def assignment_recorded(*, user: User, at: datetime) -> None:
    """Every assignment (auto or by hand) stamps the assignee's profile: the tie-break's
    "waited longest", and the row lock that orders concurrent choosers (module docstring)."""
    OperatorProfile.objects.bulk_create(
        [OperatorProfile(user=user, last_assigned_at=at)],
        update_conflicts=True,
        unique_fields=["user"],
        update_fields=["last_assigned_at"],
    )

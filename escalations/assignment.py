"""Auto-assignment's choice of operator (ASSIGNMENT_MODE=auto), made race-free.

The rule: the online operator with the fewest open assigned escalations below their capacity;
ties go to the one who has waited longest since their last assignment (never assigned first),
then the lowest id.

Why it cannot over-fill anyone. The candidates are ranked from a plain read, then taken one
at a time with `SELECT … FOR UPDATE SKIP LOCKED` on their profile row; the operator's open
escalations are counted again *after* the lock, and only then is the escalation given to them.
Every assignment to an operator — automatic or by hand — writes that operator's profile row
(`last_assigned_at`) in its own transaction, so whoever holds the lock has the operator's load
to themselves until commit, and a later statement (PostgreSQL's READ COMMITTED) counts what
earlier holders committed. `SKIP LOCKED` lets concurrent hand-offs spread over the team
instead of queueing behind the best-ranked operator's lock: a burst is assigned in parallel,
one operator row at a time.

When every candidate with room is locked by other hand-offs at that instant, the chooser waits
for the best-ranked of them. If it holds no profile lock itself it cannot be part of a wait
cycle and simply waits. If it holds some (operators it found full after locking), it waits in
a savepoint with a bounded lock wait: should two such choosers wait for each other, PostgreSQL
breaks the cycle and the loser's savepoint is rolled back — it loses that operator, never the
customer's message. If the operator turns out full, or the wait is broken off, the escalation
stays in the queue and the queue is drained after commit. Lock order: conversation →
escalation → one profile at a time.

On SQLite every write transaction holds the database's write lock from BEGIN (IMMEDIATE), so
choosers run one after another and the first candidate taken is the right one.
"""

from __future__ import annotations

from datetime import datetime

from django.db import OperationalError, connection, transaction
from django.utils import timezone

from accounts.models import User
from escalations.models import OperatorProfile
from escalations.operators import capacity_of, online_operator_ids, open_assigned_counts

_NEVER = datetime.min.replace(tzinfo=timezone.get_fixed_timezone(0))


def _ranked(candidates: list[int]) -> list[int]:
    """Online operators with room, best first, from a read without locks."""
    OperatorProfile.objects.bulk_create(
        [OperatorProfile(user_id=user_id) for user_id in candidates], ignore_conflicts=True
    )
    profiles = OperatorProfile.objects.filter(user_id__in=candidates, away=False)
    counts = open_assigned_counts(candidates)
    keyed = [
        (counts.get(profile.pk, 0), profile.last_assigned_at or _NEVER, profile.pk)
        for profile in profiles
        if counts.get(profile.pk, 0) < capacity_of(profile)
    ]
    return [user_id for *_, user_id in sorted(keyed)]


def _take(user_id: int, *, wait: bool) -> bool | None:
    """Lock the operator's profile — or skip it (None) when another chooser holds it, unless
    `wait` — and say whether they still have room, counted under the lock."""
    locked = (
        OperatorProfile.objects.select_for_update(skip_locked=not wait)
        .filter(pk=user_id, away=False)
        .first()
    )
    if locked is None:
        return None
    return open_assigned_counts([user_id]).get(user_id, 0) < capacity_of(locked)


def operator_pick() -> User | None:
    """The operator the next escalation goes to, or None when nobody online has room. Call
    inside the assigning transaction (it takes row locks held until commit)."""
    candidates = online_operator_ids()
    if not candidates:
        return None
    ranked = _ranked(candidates)
    outcomes = []
    for user_id in ranked:
        room = _take(user_id, wait=False)
        if room:
            return User.objects.get(pk=user_id)
        outcomes.append(room)
    # Everyone with room was busy with another hand-off at that instant: wait for the best of
    # them (module docstring).
    busy = [user_id for user_id, outcome in zip(ranked, outcomes, strict=True) if outcome is None]
    if busy and _take_waiting(busy[0], holding=any(outcome is False for outcome in outcomes)):
        return User.objects.get(pk=busy[0])
    return None


# How long a chooser that already holds a profile lock waits for another one. Two such
# choosers could wait for each other; PostgreSQL then breaks the cycle (its deadlock check,
# or this timeout) and the loser's wait is undone by its savepoint, not its transaction.
HOLDING_WAIT_MS = 1000


def _take_waiting(user_id: int, *, holding: bool) -> bool:
    """`_take(wait=True)`. A chooser holding no profile lock cannot be part of a wait cycle and
    simply waits. One that holds some (operators it found full) waits inside a savepoint with a
    bounded lock wait, so a broken cycle costs it this operator, never the customer's message."""
    if not holding or connection.vendor != "postgresql":
        return bool(_take(user_id, wait=True))
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = {HOLDING_WAIT_MS}")
            room = bool(_take(user_id, wait=True))
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = DEFAULT")
            return room
    except OperationalError:
        return False  # the escalation waits in the queue; it is drained after commit


def assignment_recorded(*, user: User, at: datetime) -> None:
    """Every assignment (auto or by hand) stamps the assignee's profile: the tie-break's
    "waited longest", and the row lock that orders concurrent choosers (module docstring)."""
    OperatorProfile.objects.bulk_create(
        [OperatorProfile(user=user, last_assigned_at=at)],
        update_conflicts=True,
        unique_fields=["user"],
        update_fields=["last_assigned_at"],
    )

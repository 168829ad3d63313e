"""Operators as routing sees them: presence (online / offline), the away choice, capacity and
open assignments — `GET /operators`, `POST /operators/me/presence`, the inbox's presence dots
and auto-assignment (escalations.assignment) all read them here.

An operator is `online` while at least one of their `/ws/escalations/` sockets holds a live
lease (escalations.presence) and they have not chosen `away`; otherwise `offline`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from accounts.models import User
from accounts.operators import operators
from escalations.models import Escalation, OperatorProfile
from escalations.presence import connected_user_ids
from messaging.realtime import Event

logger = logging.getLogger("parley.escalations")

ONLINE = "online"
OFFLINE = "offline"
AWAY = "away"
OPERATORS_GROUP_NAME = "operators.presence"  # channel-layer group of the admin inbox pages


@dataclass(frozen=True)
class OperatorStatus:
    id: int
    display_name: str
    status: str  # "online" | "offline"
    open_assigned: int
    capacity: int
    away: bool  # chose away (not part of the API item)
    connected: bool  # an inbox socket holds a lease (not part of the API item)

    @property
    def shown(self) -> str:
        """The inbox's dot: online, away (connected but out of routing) or offline."""
        if self.status == ONLINE:
            return ONLINE
        return AWAY if self.connected and self.away else OFFLINE

    def item(self) -> dict[str, Any]:
        """The API item of GET /operators (and of the inbox's presence frames)."""
        return {
            "id": self.id,
            "display_name": self.display_name,
            "status": self.status,
            "open_assigned": self.open_assigned,
            "capacity": self.capacity,
        }


def capacity_of(profile: OperatorProfile | None) -> int:
    if profile is None or profile.capacity is None:
        return int(settings.OPERATOR_CAPACITY)
    return int(profile.capacity)


def open_assigned_counts(user_ids: list[int]) -> dict[int, int]:
    """Open (assigned, unresolved) escalations per operator, one GROUP BY."""
    if not user_ids:
        return {}
    return dict(
        Escalation.objects.filter(status=Escalation.Status.ASSIGNED, assigned_to_id__in=user_ids)
        .order_by()
        .values_list("assigned_to_id")
        .annotate(n=Count("id"))
        .values_list("assigned_to_id", "n")
    )


def _statuses(users: list[User], *, connected: set[int]) -> list[OperatorStatus]:
    ids = [user.pk for user in users]
    profiles = {p.pk: p for p in OperatorProfile.objects.filter(user_id__in=ids)}
    counts = open_assigned_counts(ids)
    statuses = []
    for user in users:
        profile = profiles.get(user.pk)
        away = bool(profile and profile.away)
        statuses.append(
            OperatorStatus(
                id=user.pk,
                display_name=user.public_name,
                status=ONLINE if user.pk in connected and not away else OFFLINE,
                open_assigned=counts.get(user.pk, 0),
                capacity=capacity_of(profile),
                away=away,
                connected=user.pk in connected,
            )
        )
    return statuses


def operators_list() -> list[OperatorStatus]:
    """Every operator, online first, then by display name (GET /operators, the inbox).
    Three queries and one presence read, whatever the number of operators."""
    users = list(operators().order_by("id"))
    statuses = _statuses(users, connected=connected_user_ids())
    return sorted(statuses, key=lambda s: (s.status != ONLINE, s.display_name.casefold(), s.id))


def operator_status(user: User) -> OperatorStatus:
    return _statuses([user], connected=connected_user_ids())[0]


def online_operator_ids() -> list[int]:
    """Operators available to auto-assignment: connected, not away, still operators. Ordered
    by id (the order their profile rows are locked in). While the presence store (Redis) does
    not answer, nobody: the escalation waits in the queue, and the customer's message that
    opened it is not failed for it."""
    try:
        connected = connected_user_ids()
    except (RedisError, ConnectionInterrupted):
        logger.warning("presence store unavailable: auto-assignment waits")
        return []
    if not connected:
        return []
    return list(
        operators()
        .filter(pk__in=connected)
        .exclude(Q(operator_profile__away=True))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def presence_event(status: OperatorStatus) -> Event:
    """The inbox pages' push when an operator's status changes (not part of SPEC's escalation
    events: only admin inbox sockets join this group)."""
    return OPERATORS_GROUP_NAME, {
        "type": "operator.presence",
        "operator": status.item(),
        "shown": status.shown,
    }

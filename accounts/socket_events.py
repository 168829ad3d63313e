"""Telling a user's open websockets, on every node, to check their credentials again now.

Revoking a session, changing a password or resetting a second factor must close the sockets
it ends within a second, not at their next periodic re-validation (accounts.sockets re-checks
every REVALIDATE_SECONDS). Every authenticated socket joins its user's group
(`user_sockets_group`); these events go through the channel layer (Redis in production), so a
socket held by any process on any node hears them and re-validates: a socket whose token
family was revoked, or whose admin session ended, closes with 4401; the others stay.

Publishing belongs to messaging.realtime (one publisher per process, Redis pipelining); this
module is below it, so messaging registers its publisher here when the app is ready.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger("parley.realtime")

RECHECK_EVENT = "auth.recheck"  # handled by TokenAuthenticatedConsumer.auth_recheck

Event = tuple[str, dict[str, Any]]
_publisher: Callable[[list[Event]], None] | None = None


def user_sockets_group(user_id: int) -> str:
    return f"auth.user.{int(user_id)}"


def socket_publisher_register(publisher: Callable[[list[Event]], None]) -> None:
    """Called by the messaging app's ready(): how events reach the channel layer."""
    global _publisher
    _publisher = publisher


def user_sockets_recheck_on_commit(user_id: int) -> None:
    """After the surrounding transaction commits, every open socket of `user_id` re-checks its
    credentials (at once outside a transaction)."""
    events: list[Event] = [(user_sockets_group(user_id), {"type": RECHECK_EVENT})]
    transaction.on_commit(lambda: _publish(events))


def _publish(events: list[Event]) -> None:
    if _publisher is not None:
        _publisher(events)
        return
    try:  # no publisher registered (a script using accounts alone): send directly
        layer = get_channel_layer()
        if layer is not None:
            for group, event in events:
                async_to_sync(layer.group_send)(group, event)
    except Exception:  # noqa: BLE001 - sockets still re-check on their own schedule
        logger.exception("could not ask sockets to re-check their credentials")

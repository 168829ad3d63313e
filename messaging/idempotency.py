"""Idempotency keys for message sends (docs/api.md): the same key from the same user within 24 h
replays the first response and writes nothing.

The claim is a row committed *before* the work starts, unique per (user, key): a concurrent
request with the same key fails to insert and sees "in flight" (409) instead of writing twice.
The response is stored in the same transaction as the messages it describes, so a completed
record and its writes exist together or not at all.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from core.errors import Conflict, UnprocessableRequest
from messaging.models import IdempotencyRecord

REPLAY_WINDOW = timedelta(hours=24)
# A claim this old whose request never finished belongs to a crashed worker; it may be retaken.
ABANDONED_AFTER = timedelta(minutes=5)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict[str, Any]


def request_fingerprint(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def validate_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise UnprocessableRequest(
            f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} printable characters",
            loc=("header", "Idempotency-Key"),
        )
    return key


def idempotency_claim(*, user: User, key: str, fingerprint: str) -> IdempotencyRecord | Replay:
    """Claim `key` for a new request, or say how the earlier request with it went.

    Returns the claimed record (do the work, then `idempotency_complete`), or a Replay.
    Raises 422 when the key was used with another body, 409 while that request is in flight.
    Must not run inside a transaction: the claim has to be visible to other requests at once.
    """
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(user=user, key=key, fingerprint=fingerprint)
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(user=user, key=key).first()
        if existing is None:
            continue  # pruned between our insert and read; claim again
        now = timezone.now()
        if existing.created_at <= now - REPLAY_WINDOW:
            # Expired: the key is free again.
            IdempotencyRecord.objects.filter(
                pk=existing.pk, created_at=existing.created_at
            ).delete()
            continue
        if existing.fingerprint != fingerprint:
            raise UnprocessableRequest(
                "This Idempotency-Key was already used with a different request body",
                loc=("header", "Idempotency-Key"),
                type="idempotency_key_reused",
            )
        if existing.state == IdempotencyRecord.State.COMPLETED:
            return Replay(status=existing.response_status or 200, body=existing.response_body or {})
        if existing.created_at <= now - ABANDONED_AFTER:
            retaken = IdempotencyRecord.objects.filter(
                pk=existing.pk,
                state=IdempotencyRecord.State.IN_PROGRESS,
                created_at=existing.created_at,
            ).update(created_at=now)
            if retaken:
                existing.created_at = now
                return existing
        raise Conflict("A request with this Idempotency-Key is still being processed")
    raise Conflict("A request with this Idempotency-Key is still being processed")


def idempotency_complete(*, record: IdempotencyRecord, status: int, body: dict[str, Any]) -> None:
    """Store the response. Call inside the transaction that made the writes."""
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        state=IdempotencyRecord.State.COMPLETED, response_status=status, response_body=body
    )


def idempotency_release(*, record: IdempotencyRecord) -> None:
    """The request failed before writing anything: free the key so a retry can run."""
    IdempotencyRecord.objects.filter(
        pk=record.pk, state=IdempotencyRecord.State.IN_PROGRESS
    ).delete()


def idempotency_prune(*, now: Any = None) -> int:
    """Delete records past the replay window (they no longer replay anyway)."""
    now = now or timezone.now()
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lte=now - REPLAY_WINDOW).delete()
    return deleted

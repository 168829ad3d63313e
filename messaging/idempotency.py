"""Idempotency keys for message sends (docs/api.md): the same key from the same user within 24 h
replays the first response and writes nothing; the same key with another body is a 422; a
retry while the first request is still in flight is a 409.

The claim lives exactly as long as its request. A keyed send runs in one transaction, and the
claim is held by that transaction, not written as a row before the work:

- PostgreSQL: a transaction-scoped advisory lock on (user, key) (`pg_try_advisory_xact_lock`),
  taken in the same statement that reads the key's record. A second request with the key fails
  to take it and gets 409. PostgreSQL releases the lock when the transaction ends -- commit,
  rollback, a lost connection, a killed process or host -- so a retry goes through at once
  after any of them, on any process or host.
- SQLite: its one writer. Write transactions begin IMMEDIATE (config/settings.py), so a second
  request with the key waits for the first to commit and then replays it; a dead process's
  transaction is rolled back by SQLite. Within one process the same key is also refused at once
  (409) by the registry below, which the process's death takes with it.

The record is written only when the work is done, in the same transaction as the writes it
describes, so a record and its messages exist together or not at all. Two requests with one
key never both write: the lock (and on SQLite the single writer) keeps the second out, and the
record's unique (user, key) catches what slips between the read and the lock (a request that
committed just before our lock): that transaction is rolled back and the first one replayed.

Rows in the "in_progress" state are claims written by releases before this one, which may
still run beside it during a rolling deploy: such a claim is honoured (409) for ABANDONED_AFTER,
then taken over.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from accounts.fastauth import instance_from_row
from accounts.models import User
from core.errors import Conflict, UnprocessableRequest
from core.fixedsql import column, field, prepared_cursor, table
from messaging.models import IdempotencyRecord

REPLAY_WINDOW = timedelta(hours=24)
# A claim row of an earlier release this old belongs to a request that died; it may be retaken.
ABANDONED_AFTER = timedelta(minutes=5)
MAX_KEY_LENGTH = 255
IN_FLIGHT = "A request with this Idempotency-Key is still being processed"

T = TypeVar("T")


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Claim:
    """A key held by the running request (its transaction); what completing it records."""

    user_id: int
    key: str
    fingerprint: str


class _KeyTakenMeanwhile(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Another request stored a record for the key after ours read it: roll back, replay."""


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


def idempotency_run(
    *, user: User, key: str, fingerprint: str, work: Callable[[Claim], T]
) -> T | Replay:
    """Run `work` under the claim of `key`, or say how the earlier request with it went.

    Opens the request's transaction, takes the claim, and returns a Replay when the key already
    completed (nothing else runs); otherwise `work(claim)` runs inside that transaction and must
    call `idempotency_complete` in it, with the writes. Raises 422 when the key was used with
    another body, 409 while another request holds it. Must not run inside a transaction: the
    claim is this transaction (and a transaction around it would hold the claim longer).
    """
    claim = Claim(user_id=user.pk, key=key, fingerprint=fingerprint)
    with _held_in_this_process(claim):
        for _attempt in range(3):
            try:
                with transaction.atomic():
                    replay = _claim(claim)
                    if replay is not None:
                        return replay
                    return work(claim)
            except _KeyTakenMeanwhile:
                continue  # rolled back: read the record the other request stored
    raise Conflict(IN_FLIGHT)


def idempotency_complete(*, claim: Claim, status: int, body: dict[str, Any]) -> None:
    """Store the response. Call inside the claim's transaction, with the writes it describes."""
    values = {
        "user": claim.user_id,
        "key": claim.key,
        "fingerprint": claim.fingerprint,
        "state": IdempotencyRecord.State.COMPLETED,
        "response_status": status,
        "response_body": body,
        "created_at": timezone.now(),
    }
    connection = connections[DEFAULT_DB_ALIAS]
    params = [
        field(IdempotencyRecord, name).get_db_prep_save(values[name], connection)
        for name in _RECORD_FIELDS
    ]
    with prepared_cursor(DEFAULT_DB_ALIAS) as cursor:
        cursor.execute(_insert_sql(), params)
        inserted = cursor.rowcount
    if inserted != 1:
        raise _KeyTakenMeanwhile


def idempotency_prune(*, now: Any = None) -> int:
    """Delete records past the replay window (they no longer replay anyway)."""
    now = now or timezone.now()
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lte=now - REPLAY_WINDOW).delete()
    return deleted


# --- The claim ---------------------------------------------------------------------------------


def _claim(claim: Claim) -> Replay | None:
    """Take the key for this transaction and read its record: None when the work may run
    (no record, or one that no longer counts), a Replay when it completed; 409 or 422."""
    locked, record = _lock_and_read(claim)
    if not locked:
        raise Conflict(IN_FLIGHT)
    if record is None:
        return None
    now = timezone.now()
    legacy_claim = record.state == IdempotencyRecord.State.IN_PROGRESS
    if record.created_at <= now - REPLAY_WINDOW or (
        legacy_claim and record.created_at <= now - ABANDONED_AFTER
    ):
        # Expired, or the claim of a request of an earlier release that died: the key is free.
        # Deleted in this transaction, which holds the key; our record replaces it at the end.
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        return None
    if record.fingerprint != claim.fingerprint:
        raise UnprocessableRequest(
            "This Idempotency-Key was already used with a different request body",
            loc=("header", "Idempotency-Key"),
            type="idempotency_key_reused",
        )
    if legacy_claim:
        raise Conflict(IN_FLIGHT)
    return Replay(status=record.response_status or 200, body=record.response_body or {})


def advisory_lock_id(user_id: int, key: str) -> int:
    """The 64-bit advisory lock id of (user, key): a hash, so any key fits; a collision would
    only make two keys wait for each other."""
    digest = hashlib.sha256(f"parley.idempotency:{user_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_and_read(claim: Claim) -> tuple[bool, IdempotencyRecord | None]:
    """One statement: the lock (PostgreSQL) and the key's record, if any."""
    connection = connections[DEFAULT_DB_ALIAS]
    postgresql = connection.vendor == "postgresql"
    params: list[Any] = [advisory_lock_id(claim.user_id, claim.key)] if postgresql else []
    params += [claim.user_id, claim.key]
    with prepared_cursor(DEFAULT_DB_ALIAS) as cursor:
        cursor.execute(_lock_and_read_sql(postgresql), params)
        row = cursor.fetchone()
    locked, values = bool(row[0]), list(row[1:])
    if values[0] is None:  # the LEFT JOIN found no record
        return locked, None
    record = instance_from_row(IdempotencyRecord, values, connection, DEFAULT_DB_ALIAS)
    return locked, record


# The record's columns a completion writes (the id is the database's).
_RECORD_FIELDS = (
    "user",
    "key",
    "fingerprint",
    "state",
    "response_status",
    "response_body",
    "created_at",
)


def _quoted(name: str) -> str:
    # What connection.ops.quote_name does on both backends Parley runs on. `key` is a keyword
    # in SQLite's grammar: every name is quoted.
    return f'"{name}"'


@cache
def _lock_and_read_sql(postgresql: bool) -> str:
    # Names from the model, every value bound as a parameter. SQLite has no advisory locks:
    # its write transaction is the claim (see the module's docstring).
    lock = "pg_try_advisory_xact_lock(%s)" if postgresql else "1"
    columns = ", ".join(
        f"r.{_quoted(str(f.column))}" for f in IdempotencyRecord._meta.concrete_fields
    )
    user = _quoted(column(IdempotencyRecord, "user"))
    key = _quoted(column(IdempotencyRecord, "key"))
    return (
        f"SELECT {lock}, {columns} FROM (SELECT 1) AS one "  # noqa: S608 - model names
        f"LEFT JOIN {_quoted(table(IdempotencyRecord))} r ON r.{user} = %s AND r.{key} = %s"
    )


@cache
def _insert_sql() -> str:
    # ON CONFLICT DO NOTHING (PostgreSQL; SQLite since 3.24): a record stored meanwhile is
    # reported by the row count, without an error that would abort the transaction.
    columns = ", ".join(_quoted(column(IdempotencyRecord, name)) for name in _RECORD_FIELDS)
    user = _quoted(column(IdempotencyRecord, "user"))
    key = _quoted(column(IdempotencyRecord, "key"))
    values = ", ".join("%s" for _ in _RECORD_FIELDS)
    return (
        f"INSERT INTO {_quoted(table(IdempotencyRecord))} ({columns}) "  # noqa: S608 - model names
        f"VALUES ({values}) ON CONFLICT ({user}, {key}) DO NOTHING"
    )


# In-flight keys of this process's requests. SQLite's only way to say 409 at once instead of
# making the retry wait for the write lock; on PostgreSQL it spares a duplicate a round trip.
_in_flight: set[tuple[int, str]] = set()
_in_flight_lock = threading.Lock()


@contextmanager
def _held_in_this_process(claim: Claim) -> Iterator[None]:
    entry = (claim.user_id, claim.key)
    with _in_flight_lock:
        if entry in _in_flight:
            raise Conflict(IN_FLIGHT)
        _in_flight.add(entry)
    try:
        yield
    finally:
        with _in_flight_lock:
            _in_flight.discard(entry)

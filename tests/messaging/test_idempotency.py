"""Idempotency-Key on POST /messages/process (docs/api.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.utils import timezone

from accounts.models import User
from messaging import idempotency
from messaging.agent import get_agent
from messaging.agent.rules import RuleBasedAgent
from messaging.models import Conversation, IdempotencyRecord, Message
from tests.conftest import issue_access_token
from tests.messages import post_message
from tests.races import failures, race

BASE_DIR = Path(__file__).resolve().parents[2]


def send(
    client: Client,
    customer: User,
    message: str,
    key: str | None,
    conversation_id: int | None = None,
) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return post_message(client, customer, message, conversation_id, **headers)


@pytest.mark.django_db
def test_same_key_replays_the_first_response_and_writes_nothing(
    customer_client: Client, customer: User
) -> None:
    first = send(customer_client, customer, "I was charged twice", "key-1")
    assert first.status_code == 200
    assert "Idempotent-Replayed" not in first
    messages_before = Message.objects.count()
    again = send(customer_client, customer, "I was charged twice", "key-1")
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Message.objects.count() == messages_before
    assert Conversation.objects.count() == 1


@pytest.mark.django_db
def test_same_key_with_a_different_body_is_422(customer_client: Client, customer: User) -> None:
    send(customer_client, customer, "first text", "key-2")
    response = send(customer_client, customer, "second text", "key-2")
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "idempotency_key_reused"
    assert Message.objects.filter(role="customer").count() == 1


@pytest.mark.django_db
def test_keys_are_per_user(customer: User, other_customer: User, client_for: Any) -> None:
    a = send(client_for(customer), customer, "hello", "shared-key")
    b = send(client_for(other_customer), other_customer, "hello", "shared-key")
    assert a.status_code == b.status_code == 200
    assert "Idempotent-Replayed" not in b
    assert a.json()["conversation_id"] != b.json()["conversation_id"]


@pytest.mark.django_db
def test_a_claim_row_of_an_earlier_release_is_409_while_fresh(
    customer_client: Client, customer: User
) -> None:
    """Releases before this one wrote an "in progress" row before the work; during a rolling
    deploy such a request may still be running."""
    fingerprint = idempotency.request_fingerprint(
        {"customer_id": customer.pk, "conversation_id": None, "message": "hello"}
    )
    IdempotencyRecord.objects.create(user=customer, key="busy", fingerprint=fingerprint)
    response = send(customer_client, customer, "hello", "busy")
    assert response.status_code == 409
    assert response.json() == {"detail": idempotency.IN_FLIGHT}
    assert Message.objects.count() == 0


class HeldAgent(RuleBasedAgent):
    """The rule-based agent, held mid-request until the test lets it answer."""

    entered = threading.Event()
    release = threading.Event()

    def respond_now(self, conversation: Any, message: str) -> Any:
        HeldAgent.entered.set()
        assert HeldAgent.release.wait(30)
        return super().respond_now(conversation, message)


@pytest.fixture
def held_agent(settings: Any) -> Iterator[type[HeldAgent]]:
    HeldAgent.entered.clear()
    HeldAgent.release.clear()
    settings.AGENT_BACKEND = "tests.messaging.test_idempotency.HeldAgent"
    get_agent.cache_clear()
    yield HeldAgent
    HeldAgent.release.set()
    get_agent.cache_clear()


@pytest.mark.django_db(transaction=True)
def test_a_request_in_flight_is_409_and_its_end_frees_the_key(
    customer: User, held_agent: type[HeldAgent]
) -> None:
    token = issue_access_token(customer)
    first: list[Any] = []

    def first_request() -> None:
        try:
            first.append(
                send(Client(headers={"Authorization": f"Bearer {token}"}), customer, "hi", "k")
            )
        finally:
            connection.close()

    thread = threading.Thread(target=first_request)
    thread.start()
    try:
        assert held_agent.entered.wait(10)
        client = Client(headers={"Authorization": f"Bearer {token}"})
        retry = send(client, customer, "hi", "k")
        assert retry.status_code == 409
        assert retry.json() == {"detail": idempotency.IN_FLIGHT}
        assert Message.objects.count() == 0
    finally:
        held_agent.release.set()
        thread.join(30)

    assert first[0].status_code == 200
    again = send(client, customer, "hi", "k")
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first[0].json()
    assert Message.objects.filter(role="customer").count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="advisory locks: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_the_key_is_held_by_a_connection_and_freed_when_it_is_lost(
    customer_client: Client, customer: User
) -> None:
    """Another process (here: another connection) holding the key's claim → 409; its
    connection lost (a dead process, a restarted database) → the key is free at once."""
    import psycopg

    db = connection.settings_dict
    other = psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=False
    )
    try:
        other.execute(
            "SELECT pg_advisory_xact_lock(%s)", [idempotency.advisory_lock_id(customer.pk, "k")]
        )
        held = send(customer_client, customer, "hello", "k")
        assert held.status_code == 409
        assert send(customer_client, customer, "hello", "other-key").status_code == 200
    finally:
        other.close()  # no COMMIT, no ROLLBACK: the connection just ends
    response = send(customer_client, customer, "hello", "k")
    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response
    assert Message.objects.filter(role="customer", content="hello").count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_database_failure_mid_write_leaves_the_key_free(
    customer_client: Client, customer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away where a restart would hit the send (the turn is being written)
    and stays away for the rest of the request: 503, nothing written, and a retry with the
    same key once it is back goes through at once -- not a 409 until a claim times out."""
    from messaging import services

    conversation = Conversation.objects.create(customer=customer)
    real = services.fastpath.turn_write
    down = False

    def unavailable(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if down:
            raise OperationalError("the database system is shutting down")
        return execute(sql, params, many, context)

    def lost(**_: object) -> None:
        nonlocal down
        down = True
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(services.fastpath, "turn_write", lost)
    with connection.execute_wrapper(unavailable):
        failed = send(customer_client, customer, "hello", "restart", conversation.pk)
    down = False
    assert failed.status_code == 503
    assert IdempotencyRecord.objects.count() == 0

    monkeypatch.setattr(services.fastpath, "turn_write", real)
    retried = send(customer_client, customer, "hello", "restart", conversation.pk)
    assert retried.status_code == 200
    assert "Idempotent-Replayed" not in retried
    assert Message.objects.filter(conversation=conversation, role="customer").count() == 1
    assert IdempotencyRecord.objects.get().state == "completed"


HOLD_THE_KEY = """
import os, sys, time
import django
django.setup()
from accounts.models import User
from messaging import idempotency

def work(claim):
    print("holding", flush=True)
    time.sleep(60)

user = User.objects.get(pk=int(os.environ["USER_ID"]))
idempotency.idempotency_run(user=user, key="killed", fingerprint="f", work=work)
"""


def _test_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_a_killed_process_frees_its_key_within_seconds(
    customer_client: Client, customer: User
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_KEY],
        cwd=BASE_DIR,
        env={
            **os.environ,
            "DATABASE_URL": _test_database_url(),
            "USER_ID": str(customer.pk),
            "DJANGO_SETTINGS_MODULE": "config.settings",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding", holder.stderr
        if connection.vendor == "postgresql":
            # SQLite: the holder has the write lock, a send would wait for it.
            assert send(customer_client, customer, "hello", "killed").status_code == 409
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    finally:
        if holder.poll() is None:
            holder.kill()
    started = time.monotonic()
    response = send(customer_client, customer, "hello", "killed")
    assert response.status_code == 200
    assert time.monotonic() - started < 5
    assert Message.objects.filter(role="customer").count() == 1


@pytest.mark.django_db
def test_a_record_stored_between_the_read_and_the_write_is_replayed(
    customer_client: Client, customer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read and the lock are one statement: a request that committed in between (after
    the read, before the lock was free) is caught by the record's unique key. The turn just
    written is rolled back and the first response replayed."""
    first = send(customer_client, customer, "hello", "k")
    real = idempotency._lock_and_read
    reads: list[object] = []

    def stale_read(claim: idempotency.Claim) -> Any:
        locked, record = real(claim)
        reads.append(record)
        return (locked, None) if len(reads) == 1 else (locked, record)

    monkeypatch.setattr(idempotency, "_lock_and_read", stale_read)
    again = send(customer_client, customer, "hello", "k")

    assert len(reads) == 2
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Message.objects.filter(role="customer").count() == 1
    assert Conversation.objects.count() == 1


@pytest.mark.django_db
def test_abandoned_claim_is_taken_over(customer_client: Client, customer: User) -> None:
    fingerprint = idempotency.request_fingerprint(
        {"customer_id": customer.pk, "conversation_id": None, "message": "hello"}
    )
    IdempotencyRecord.objects.create(
        user=customer,
        key="crashed",
        fingerprint=fingerprint,
        created_at=timezone.now() - timedelta(minutes=10),
    )
    response = send(customer_client, customer, "hello", "crashed")
    assert response.status_code == 200
    assert IdempotencyRecord.objects.get().state == "completed"


@pytest.mark.django_db
def test_key_older_than_24h_no_longer_replays(customer_client: Client, customer: User) -> None:
    send(customer_client, customer, "hello", "old-key")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    response = send(customer_client, customer, "hello", "old-key")
    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response
    assert Conversation.objects.count() == 2


@pytest.mark.django_db
def test_failed_request_frees_the_key(customer_client: Client, customer: User) -> None:
    missing = send(customer_client, customer, "hello", "retry-me", conversation_id=999999)
    assert missing.status_code == 404
    assert IdempotencyRecord.objects.count() == 0
    assert send(customer_client, customer, "hello", "retry-me").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 256])
def test_bad_key_is_422(customer_client: Client, customer: User, key: str) -> None:
    assert send(customer_client, customer, "hello", key).status_code == 422
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_expired_records_are_pruned(customer: User) -> None:
    IdempotencyRecord.objects.create(
        user=customer, key="old", fingerprint="f", created_at=timezone.now() - timedelta(days=2)
    )
    IdempotencyRecord.objects.create(user=customer, key="new", fingerprint="f")
    assert idempotency.idempotency_prune() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_write_once(customer: User) -> None:
    token = issue_access_token(customer)

    def worker() -> Any:
        client = Client(headers={"Authorization": f"Bearer {token}"})
        return send(client, customer, "exactly once please", "race-key")

    results = race([worker] * 8)
    assert failures(results) == []
    statuses = [response.status_code for response in results]
    assert Message.objects.filter(role="customer").count() == 1
    assert Conversation.objects.count() == 1
    assert statuses.count(200) >= 1
    assert set(statuses) <= {200, 409}


@pytest.mark.django_db
def test_replay_body_is_byte_identical(customer_client: Client, customer: User) -> None:
    first = send(customer_client, customer, "let me talk to a person", "key-bytes")
    again = send(customer_client, customer, "let me talk to a person", "key-bytes")
    assert again["Idempotent-Replayed"] == "true"
    assert again.content == first.content


@pytest.mark.django_db
def test_a_record_stored_as_a_rest_body_still_replays(
    customer_client: Client, customer: User
) -> None:
    """Records written before results were stored as domain records held the REST body."""
    from messaging.schemas import process_out
    from messaging.services import MessageSendResult

    first = send(customer_client, customer, "I was charged twice", "key-legacy")
    record = IdempotencyRecord.objects.get(key="key-legacy")
    stored = MessageSendResult.from_record(record.response_body, replayed=False, rate=None)
    IdempotencyRecord.objects.filter(pk=record.pk).update(response_body=process_out(stored))

    again = send(customer_client, customer, "I was charged twice", "key-legacy")

    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()

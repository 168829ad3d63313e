"""ASSIGNMENT_MODE=auto: who gets a new escalation, the queue served oldest first when an
operator comes online or frees capacity, the usual system message, event and push — and, on
PostgreSQL, that concurrency never over-fills an operator or assigns an escalation twice."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from accounts.models import User
from escalations import presence, services
from escalations.models import Escalation, OperatorProfile
from messaging import realtime
from messaging.models import Message
from messaging.services import message_send
from tests.escalations.conftest import Committed
from tests.factories import UserFactory
from tests.inbox.conftest import Events
from tests.pushes import Pushes
from tests.routing.conftest import joined_notices, online

Test = TypeVar("Test", bound=Callable[..., Any])

pytestmark = pytest.mark.django_db


def test_manual_mode_assigns_nobody(
    make_operator: Callable[..., User], new_escalation: Callable[..., Escalation]
) -> None:
    make_operator("Anna")
    escalation = new_escalation()
    assert (escalation.status, escalation.assigned_to_id) == ("open", None)


@pytest.mark.usefixtures("auto")
def test_a_new_escalation_goes_at_once_to_the_least_loaded_online_operator(
    make_operator: Callable[..., User],
    new_escalation: Callable[..., Escalation],
    recorded_events: Events,
    pushed: Pushes,
    committed: Committed,
) -> None:
    anna, ben = make_operator("Anna"), make_operator("Ben")
    make_operator("Cleo", is_online=False)
    first, second, third = committed(lambda: [new_escalation() for _ in range(3)])

    holders = [e.assigned_to_id for e in (first, second, third)]
    # Anna and Ben have never been assigned: Anna (lower id) first, then Ben (waited longer
    # than Anna now), then Anna again (fewest: 1 each; Anna waited longer).
    assert holders == [anna.pk, ben.pk, anna.pk]
    assert {e.status for e in (first, second, third)} == {"assigned"}
    assert joined_notices(first.conversation_id) == ["Anna joined the conversation."]
    assigned = [data for kind, data in recorded_events if kind == "escalation.assigned"]
    assert [(d["id"], d["assigned_to"]) for d in assigned] == [
        (first.pk, anna.pk),
        (second.pk, ben.pk),
        (third.pk, anna.pk),
    ]
    staff_events = [e for group, e in pushed if group == realtime.ESCALATIONS_GROUP]
    assert [(e["event"], e["escalation"]["id"]) for e in staff_events] == [
        ("opened", first.pk),
        ("assigned", first.pk),
        ("opened", second.pk),
        ("assigned", second.pk),
        ("opened", third.pk),
        ("assigned", third.pk),
    ]
    customer_sees = pushed.messages(f"conversation.{first.conversation_id}")
    assert [m["content"] for m in customer_sees] == [
        "Conversation passed to the support team.",
        "Anna joined the conversation.",
    ]


@pytest.mark.usefixtures("auto")
def test_fewest_open_assignments_win_over_waiting_longest(
    make_operator: Callable[..., User], new_escalation: Callable[..., Escalation]
) -> None:
    anna, ben = make_operator("Anna"), make_operator("Ben")
    now = timezone.now()
    OperatorProfile.objects.filter(user=anna).update(last_assigned_at=now - timedelta(hours=5))
    OperatorProfile.objects.update_or_create(user=ben, defaults={"last_assigned_at": now})
    busy = new_escalation()  # Anna waited longest: hers
    assert busy.assigned_to_id == anna.pk
    assert new_escalation().assigned_to_id == ben.pk  # Anna holds one, Ben none


@pytest.mark.usefixtures("auto")
def test_capacity_is_respected_and_the_rest_waits(
    make_operator: Callable[..., User], new_escalation: Callable[..., Escalation], settings: Any
) -> None:
    settings.OPERATOR_CAPACITY = 1
    anna = make_operator("Anna")
    ben = make_operator("Ben", capacity=2)

    holders = [new_escalation().assigned_to_id for _ in range(4)]

    assert holders == [anna.pk, ben.pk, ben.pk, None]
    assert Escalation.objects.filter(status="open").count() == 1


@pytest.mark.usefixtures("auto")
def test_away_and_capacity_zero_take_nothing(
    make_operator: Callable[..., User], new_escalation: Callable[..., Escalation]
) -> None:
    anna = make_operator("Anna")
    make_operator("Ben", capacity=0)
    services.operator_presence_set(actor=anna, status="away")
    assert new_escalation().assigned_to_id is None


@pytest.mark.usefixtures("auto")
def test_people_who_are_not_operators_are_never_picked(
    new_escalation: Callable[..., Escalation],
) -> None:
    staffer = UserFactory(is_staff=True)  # staff outside the group, online somehow
    online(staffer)
    assert new_escalation().assigned_to_id is None


# --- The queue ----------------------------------------------------------------------------


@pytest.mark.usefixtures("auto")
def test_an_operator_coming_online_takes_the_oldest_first(
    make_operator: Callable[..., User],
    new_escalation: Callable[..., Escalation],
    committed: Committed,
) -> None:
    anna = make_operator("Anna", capacity=2, is_online=False)
    waiting = [new_escalation() for _ in range(3)]
    assert all(e.assigned_to_id is None for e in waiting)

    def open_the_inbox() -> Any:
        assert services.operator_lease_take(user=anna, socket_id="page")
        return services.operator_socket_joined(user=anna, socket_id="page")

    joined = committed(open_the_inbox)

    assert joined is not None
    assert joined.status == "online"
    for escalation in waiting:
        escalation.refresh_from_db()
    assert [e.assigned_to_id for e in waiting] == [anna.pk, anna.pk, None]


@pytest.mark.usefixtures("auto")
def test_coming_back_from_away_drains_the_queue(
    make_operator: Callable[..., User],
    new_escalation: Callable[..., Escalation],
    committed: Committed,
) -> None:
    anna = make_operator("Anna")
    services.operator_presence_set(actor=anna, status="away")
    escalation = new_escalation()
    assert escalation.assigned_to_id is None

    committed(lambda: services.operator_presence_set(actor=anna, status="online"))

    escalation.refresh_from_db()
    assert escalation.assigned_to_id == anna.pk


@pytest.mark.usefixtures("auto")
def test_resolving_frees_capacity_for_the_oldest_waiting(
    make_operator: Callable[..., User],
    new_escalation: Callable[..., Escalation],
    committed: Committed,
) -> None:
    anna = make_operator("Anna", capacity=1)
    held = new_escalation()
    older, newer = new_escalation(), new_escalation()
    assert (held.assigned_to_id, older.assigned_to_id, newer.assigned_to_id) == (
        anna.pk,
        None,
        None,
    )

    cid = held.conversation_id
    committed(lambda: services.escalation_resolve(conversation_id=cid, actor=anna, notes=""))

    older.refresh_from_db()
    newer.refresh_from_db()
    assert (older.assigned_to_id, newer.assigned_to_id) == (anna.pk, None)
    assert joined_notices(older.conversation_id) == ["Anna joined the conversation."]


@pytest.mark.usefixtures("auto")
def test_a_takeover_frees_the_previous_holder(
    make_operator: Callable[..., User],
    new_escalation: Callable[..., Escalation],
    committed: Committed,
) -> None:
    anna = make_operator("Anna", capacity=1)
    ben = make_operator("Ben", capacity=0)
    held = new_escalation()
    waiting = new_escalation()

    committed(lambda: services.escalation_assign(conversation_id=held.conversation_id, actor=ben))

    waiting.refresh_from_db()
    assert waiting.assigned_to_id == anna.pk


@pytest.mark.usefixtures("auto")
def test_the_periodic_job_drains_what_no_event_did(
    make_operator: Callable[..., User], new_escalation: Callable[..., Escalation]
) -> None:
    from escalations.jobs import escalations_tick

    escalation = new_escalation()
    anna = make_operator("Anna")  # came online without a socket event (e.g. a lost push)

    result = escalations_tick()

    escalation.refresh_from_db()
    assert (result.assigned, escalation.assigned_to_id) == (1, anna.pk)
    assert escalations_tick().assigned == 0


def test_draining_in_manual_mode_does_nothing(
    make_operator: Callable[..., User], new_escalation: Callable[..., Escalation]
) -> None:
    new_escalation()
    make_operator("Anna")
    assert services.assignment_queue_drain() == 0


@pytest.mark.usefixtures("auto")
def test_presence_store_failure_leaves_the_escalation_waiting(
    make_operator: Callable[..., User],
    new_escalation: Callable[..., Escalation],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    make_operator("Anna")

    def broken(**kwargs: Any) -> set[int]:
        raise RedisConnectionError("down")

    monkeypatch.setattr("escalations.operators.connected_user_ids", broken)
    escalation = new_escalation()  # the customer's message is not failed by it
    assert (escalation.status, escalation.assigned_to_id) == ("open", None)


# --- Concurrency (PostgreSQL: row locks; SQLite serialises writers anyway) -----------------


def _on_postgresql(why: str) -> Callable[[Test], Test]:
    """A test of concurrent connections: it commits for real, and runs on PostgreSQL only (`why`
    is a PostgreSQL matter: SQLite serialises writers anyway)."""

    def mark(test: Test) -> Test:
        elsewhere = connection.vendor != "postgresql"
        only_there = pytest.mark.skipif(elsewhere, reason=f"{why}: PostgreSQL")
        return only_there(pytest.mark.django_db(transaction=True)(test))

    return mark


def _run_threads(count: int, target: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait()
            target(index)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def _assert_nobody_over_capacity_and_nobody_twice(capacities: dict[int, int]) -> Counter[int]:
    loads = Counter(
        Escalation.objects.filter(status="assigned").values_list("assigned_to_id", flat=True)
    )
    assert all(loads[user_id] <= capacity for user_id, capacity in capacities.items()), loads
    for escalation in Escalation.objects.all():
        notices = joined_notices(escalation.conversation_id)
        assert len(notices) == (1 if escalation.assigned_to_id else 0), escalation
    return loads


@_on_postgresql("concurrent writers")
@pytest.mark.usefixtures("auto", "scripted_agent")
def test_a_burst_of_hand_offs_never_overfills_anyone(
    make_operator: Callable[..., User], settings: Any
) -> None:
    settings.RATE_LIMIT_MESSAGES = "1000/m"
    settings.RATE_LIMIT_CONVERSATIONS = "1000/h"
    anna = make_operator("Anna", capacity=2)
    ben = make_operator("Ben", capacity=3)
    customers = [UserFactory(username=f"c{i}") for i in range(12)]

    def hand_off(index: int) -> None:
        message_send(customer=customers[index], conversation_id=None, text="I want a human")

    errors = _run_threads(12, hand_off)

    assert errors == []
    assert Escalation.objects.count() == 12
    loads = _assert_nobody_over_capacity_and_nobody_twice({anna.pk: 2, ben.pk: 3})
    assert loads == Counter({anna.pk: 2, ben.pk: 3})
    assert Escalation.objects.filter(status="open", assigned_to__isnull=True).count() == 7


@_on_postgresql("concurrent writers")
@pytest.mark.usefixtures("auto")
def test_concurrent_drains_assign_each_escalation_once(
    make_operator: Callable[..., User], new_escalation: Callable[..., Escalation]
) -> None:
    waiting = [new_escalation() for _ in range(15)]  # nobody online yet
    operators = [make_operator(name, capacity=3) for name in ("Anna", "Ben", "Cleo")]

    errors = _run_threads(8, lambda _: services.assignment_queue_drain())

    assert errors == []
    loads = _assert_nobody_over_capacity_and_nobody_twice({op.pk: 3 for op in operators})
    assert sum(loads.values()) == 9
    # Oldest first: the nine oldest were assigned, the six newest wait.
    assigned = [e.pk for e in waiting if Escalation.objects.get(pk=e.pk).assigned_to_id]
    assert assigned == [e.pk for e in waiting[:9]]
    events = Message.objects.filter(role="system", content__endswith="joined the conversation.")
    assert events.count() == 9
    assert presence.connected_user_ids() == {op.pk for op in operators}


@contextmanager
def _profile_locked_elsewhere(user_id: int) -> Iterator[None]:
    """Another connection holds the operator's profile row lock (a concurrent assignment to
    them) for as long as the block runs."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                OperatorProfile.objects.select_for_update().get(pk=user_id)
                holding.set()
                release.wait(10)
        finally:
            close_old_connections()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        yield
    finally:
        release.set()
        holder.join(10)


@_on_postgresql("row locks held by another connection")
@pytest.mark.usefixtures("auto")
def test_a_hand_off_skips_an_operator_another_one_is_assigning_to(
    make_operator: Callable[..., User], new_escalation: Callable[..., Escalation]
) -> None:
    """SKIP LOCKED: while a concurrent hand-off holds the best-ranked operator's row, the next
    one goes to the next best at once instead of queueing behind it."""

    anna, ben = make_operator("Anna", capacity=5), make_operator("Ben", capacity=5)

    with _profile_locked_elsewhere(anna.pk):
        started = timezone.now()
        escalation = new_escalation()  # Anna ranks first (lower id), but is being assigned to
        waited = timezone.now() - started

    assert escalation.assigned_to_id == ben.pk
    assert waited < timedelta(seconds=5)


@_on_postgresql("row locks held by another connection")
def test_a_chooser_holding_locks_gives_up_a_wait_without_losing_its_transaction(
    make_operator: Callable[..., User], customer: User
) -> None:
    """The bounded wait of a chooser that already holds profile locks: when it runs out, only
    the savepoint is rolled back and the surrounding transaction (the customer's message) goes
    on."""
    from escalations import assignment
    from messaging.models import Conversation

    ben = make_operator("Ben", capacity=5)

    with _profile_locked_elsewhere(ben.pk), transaction.atomic():
        Conversation.objects.create(customer=customer)
        started = timezone.now()
        took = assignment._take_waiting(ben.pk, holding=True)
        waited = timezone.now() - started
        Conversation.objects.create(customer=customer)  # the transaction is still usable

    assert took is False
    assert timedelta(seconds=0.5) < waited < timedelta(seconds=5)
    assert Conversation.objects.filter(customer=customer).count() == 2

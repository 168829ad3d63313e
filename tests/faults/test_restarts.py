"""A restart of PostgreSQL or Redis is seconds of 503s, never an outage of Parley.

`make serve` and `make run` run on a PostgreSQL and a Redis of the test's own, under four
clients that send messages with Idempotency-Keys and retry each (same key, same body) until it
is acknowledged; the database and then Redis are restarted in the middle. Afterwards:
every acknowledged message is stored exactly once and seqs have no gap, nothing answered a 5xx
but 503, every send in flight completed within seconds of the restart, the worker delivered the
events of the messages written before, during and after, /ready said what was down while it
was, the log named each outage once per process (not once per request), and no Parley process
exited -- the same processes still serve.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.faults.deployment import (
    KeyedSender,
    Parley,
    Send,
    SocketListener,
    check_delivered,
    check_stored_once,
    parley_on_own_services,
    senders_running,
    until,
)
from tests.realtime.servers import api

pytestmark = pytest.mark.slow

# How soon after the dependency is back a send that was in flight must be acknowledged: the
# clients retry every 0.25 s, the pool replaces dead connections at once.
WITHIN_SECONDS = 10.0
PG_DOWN_SECONDS = 2.0
REDIS_DOWN_SECONDS = 1.0


def _acknowledged_since(senders: list[KeyedSender], since: float, count: int) -> Callable[[], bool]:
    def done() -> bool:
        return all(
            sum(1 for s in sender.acknowledged() if s.first_try >= since) >= count
            for sender in senders
        )

    return done


class ReadyWatch(threading.Thread):
    """Polls /ready every 0.2 s: what it said, and when."""

    def __init__(self, parley: Parley) -> None:
        super().__init__(daemon=True)
        self.parley = parley
        self.seen: list[tuple[float, int, Any]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                status, body = api(self.parley.http, "GET", "/ready")
            except OSError as exc:
                status, body = 0, type(exc).__name__
            self.seen.append((time.monotonic(), status, body))
            time.sleep(0.2)


def _restart_under_load(
    parley: Parley, senders: list[KeyedSender], restart: Callable[[], None]
) -> tuple[float, float]:
    """Restart while the senders send; (went down, came back). Returns once every sender had
    three more messages acknowledged after the restart."""
    down = time.monotonic()
    restart()
    back = time.monotonic()
    until(_acknowledged_since(senders, back, 3), 60, "sends after the restart", parley)
    return down, back


def _check_sends(senders: list[KeyedSender], back_at: list[float]) -> Counter[int | str]:
    statuses: Counter[int | str] = Counter()
    for sender in senders:
        for send in sender.sends:
            statuses.update(send.statuses)
            assert send.acknowledged is not None, (send.key, send.statuses)
            # In flight when a dependency went away: done within seconds of its return.
            for back in back_at:
                if send.first_try < back <= send.acknowledged:
                    waited = send.acknowledged - back
                    assert waited < WITHIN_SECONDS, (send.key, waited, send.statuses)
    # No 5xx but 503, no 409 (a retry never met a claim its failed attempt left behind),
    # no connection refused or reset: the servers stayed up.
    assert set(statuses) <= {200, 503}, statuses
    return statuses


def _outage_lines(parley: Parley) -> list[dict[str, Any]]:
    lines = []
    for line in parley.log_text().splitlines():
        if line.startswith("{") and '"parley.outages"' in line:
            lines.append(json.loads(line))
    return lines


def _check_log(parley: Parley, dependencies: set[str]) -> Counter[tuple[int, str]]:
    """Each process names each outage once (and its end), not once per refused request."""
    text = parley.log_text()
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert not [r for r in records if r["logger"] in ("django.request", "psycopg.pool")]
    # Every error line is the start of an outage: no per-request line, no traceback.
    errors = [r for r in records if r["level"] in ("ERROR", "CRITICAL")]
    assert all(r["logger"] == "parley.outages" for r in errors), errors
    assert "Traceback" not in text, parley.log_tail(200)
    assert "exited with" not in text  # the supervisor restarted nothing
    lines = _outage_lines(parley)
    started = Counter(
        (line["pid"], line["dependency"]) for line in lines if line["outage"] == "started"
    )
    ended = Counter(
        (line["pid"], line["dependency"]) for line in lines if line["outage"] == "ended"
    )
    assert {dependency for _, dependency in started} <= dependencies | {"cache", "channel_layer"}
    assert started == ended  # every outage seen ended, in the process that saw it
    assert max(started.values()) <= 2, lines  # per process and dependency, per restart
    return started


def _written_seqs(body: dict[str, Any]) -> set[int]:
    """The seqs a send wrote: its message, and the reply unless that was an acknowledgement
    written before (an escalated conversation answers every message with the same one)."""
    metadata = body["metadata"]
    customer, reply = metadata["customer_message_seq"], metadata["seq"]
    return {customer, reply} if reply > customer else {customer}


def _socket_send(ack: dict[str, Any]) -> Send:
    """The socket's message, as the stored-once check counts it."""
    now = time.monotonic()
    return Send(
        key="ws-1",
        text="over the socket",
        first_try=now,
        statuses=[200],
        acknowledged=now,
        body={"metadata": {"customer_message_seq": ack["customer_message_seq"]}},
    )


def test_make_serve_rides_out_a_postgresql_and_a_redis_restart() -> None:
    with parley_on_own_services("serve") as (parley, receiver):
        pg, redis = parley.pg, parley.redis
        processes = parley.processes()
        assert sum("run_worker" in command for command in processes.values()) == 1
        ready = ReadyWatch(parley)
        ready.start()
        with senders_running(parley) as senders:
            until(_acknowledged_since(senders, 0, 3), 60, "sends before the restart", parley)
            # A customer watching one conversation on the websocket tier throughout.
            watched = senders[0]
            assert watched.conversation_id is not None
            socket = SocketListener(parley, watched.token, watched.conversation_id)
            socket.start()
            pg_down, pg_back = _restart_under_load(
                parley, senders, lambda: pg.restart(down_for=PG_DOWN_SECONDS)
            )
            after_pg = datetime.now(UTC)
            redis_down, redis_back = _restart_under_load(
                parley, senders, lambda: redis.restart(down_for=REDIS_DOWN_SECONDS)
            )
        ready.stopping.set()
        ready.join(10)

        # The socket stayed open through both restarts and got every message written after
        # it opened: pushed live, or -- for what was published while the channel layer's
        # subscription was down -- caught up from the database once it was back.
        assert socket.closed is None, socket.closed
        expected = {
            seq
            for send in watched.sends
            if send.first_try > socket.opened_at and send.body is not None
            for seq in _written_seqs(send.body)
        }
        until(lambda: expected <= socket.message_seqs(), 15, "every message on the socket", parley)
        # A message over the socket itself, with a client_msg_id: acknowledged.
        socket.send({"type": "message", "content": "over the socket", "client_msg_id": "ws-1"})
        until(lambda: any(f["type"] == "message.ack" for f in socket.frames), 10, "ws ack", parley)
        socket.close()
        (ack,) = [f for f in socket.frames if f["type"] == "message.ack"]
        assert (ack["client_msg_id"], ack["replayed"]) == ("ws-1", False)
        watched.sends.append(_socket_send(ack))

        statuses = _check_sends(senders, [pg_back, redis_back])
        assert statuses[503] > 0  # the restarts were felt, and answered with 503
        message_ids = check_stored_once(parley, senders)
        check_delivered(parley, receiver, message_ids)
        # Across the Redis restart -- the webhook queue's broker (WEBHOOK_QUEUE=celery) -- none
        # was sent twice. (An attempt the PostgreSQL restart cut short between sending and
        # recording goes again, with the same webhook-id: receivers drop it. Those came before.)
        sent_after_pg = Counter(
            request.headers["webhook-id"]
            for request in receiver.requests
            if datetime.fromisoformat(request.json["timestamp"]) > after_pg
        )
        assert sent_after_pg, "no event after the PostgreSQL restart"
        assert set(sent_after_pg.values()) == {1}, sent_after_pg.most_common(3)
        # The worker's consumer lost the broker, so a fresh one took over once Redis was back.
        assert "restarting the webhook worker's consumer" in parley.log_text()

        # /ready named what was down while it was down, and is 200 again.
        during_pg = [
            body for at, status, body in ready.seen if pg_down < at < pg_back and status == 503
        ]
        assert any(body["checks"]["database"] == "unavailable" for body in during_pg), ready.seen
        assert ready.seen[-1][1] == 200
        assert api(parley.http, "GET", "/ready")[0] == 200

        # Still serving, by the very same processes: none exited and none was restarted.
        assert parley.processes() == processes
        outages = _check_log(parley, {"database", "cache", "channel_layer"})
        assert sum(outages.values()) < statuses[503]  # far fewer lines than refused requests
        sender = KeyedSender(parley, "sender1")
        sender.conversation_id = senders[0].conversation_id
        sender._send(10_000)
        assert sender.sends[-1].statuses == [200]


def test_make_run_keeps_its_worker_through_a_postgresql_restart() -> None:
    with parley_on_own_services("run") as (parley, receiver):
        pg = parley.pg
        processes = parley.processes()
        assert sum("run_worker" in command for command in processes.values()) == 1
        with senders_running(parley, count=2) as senders:
            until(_acknowledged_since(senders, 0, 3), 60, "sends before the restart", parley)
            _, pg_back = _restart_under_load(
                parley, senders, lambda: pg.restart(down_for=PG_DOWN_SECONDS)
            )
        _check_sends(senders, [pg_back])
        message_ids = check_stored_once(parley, senders)
        check_delivered(parley, receiver, message_ids)
        assert parley.processes() == processes
        _check_log(parley, {"database"})

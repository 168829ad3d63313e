"""Faults of one part of a two-host deployment, under keyed senders that retry each message with
its Idempotency-Key on the other host when one fails them (as a client of several hosts does):

- an application host SIGKILLed (every process of it at once): every acknowledged write is
  stored exactly once with gap-free seqs, a socket on the dead host resumes on the other from
  its last seq without a gap, and every event is still delivered;
- one Redis shard lost: /ready names it, requests that need it answer 503 with Retry-After and
  write nothing, and everything works again once it is back;
- PostgreSQL restarted with both hosts serving: only 200s and 503s, every write once, every
  event delivered, none to two different ids;
- a network partition between an application host and the data host (its link down): the
  same guarantees, and the host serves again once the link is back.

Each test leaves both hosts ready for the next (the cluster is shared by the session)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from typing import Any

import pytest

from deploy.cluster import _netns_pids
from deploy.hosts import REDIS_SHARD_PORTS
from tests.cluster.hosts import Deployment, Endpoint
from tests.faults.deployment import (
    KeyedSender,
    SocketListener,
    check_delivered,
    check_stored_once,
    senders_running,
    until,
)
from tests.realtime.servers import api

# The session's cluster starts inside the first test's time (about a minute on 2 cores).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
# What a client may meet from a host that is dying or cut off: no answer, a refused or reset
# connection, 503 while a dependency is away, 409 while a lost request's key is released.
CUT_OFF = {"URLError", "RemoteDisconnected", "ConnectionResetError", "TimeoutError"}

# A send in flight when the fault began is acknowledged this soon after it ended.
WITHIN_SECONDS = 15.0


def keyed_senders(
    cluster: Deployment, *, request_timeout: float = 30.0
) -> contextlib.AbstractContextManager[list[KeyedSender]]:
    """Three senders that start on host A and move to the other host on any failure."""
    return senders_running(
        cluster, 3, request_timeout=request_timeout, endpoints=cluster.hosts, pause=0.1
    )


def _acknowledged_since(senders: list[KeyedSender], since: float, count: int) -> bool:
    return all(
        sum(1 for s in sender.acknowledged() if s.first_try >= since) >= count for sender in senders
    )


def _check_sends(senders: list[KeyedSender], allowed: set[Any], back: float) -> set[Any]:
    seen: set[Any] = set()
    for sender in senders:
        for send in sender.sends:
            seen.update(send.statuses)
            assert send.acknowledged is not None, (send.key, send.statuses)
            if send.first_try < back <= send.acknowledged:
                assert send.acknowledged - back < WITHIN_SECONDS, (send.key, send.statuses)
    assert seen <= allowed, seen
    return seen


def _check_events_once(cluster: Deployment, message_ids: list[int], timeout: float = 90) -> None:
    """Every message's event delivered; a repeat (an attempt whose outcome the fault kept from
    being recorded) always carries the same webhook-id, so receivers drop it."""
    check_delivered(cluster, cluster.receiver, message_ids, timeout=timeout)
    ids: dict[int, set[str]] = {}
    for request in cluster.receiver.requests:
        event = request.json
        if event["type"] == "message.created" and event["data"]["id"] in message_ids:
            ids.setdefault(event["data"]["id"], set()).add(request.headers["webhook-id"])
    assert all(len(webhook_ids) == 1 for webhook_ids in ids.values()), ids


def test_a_killed_app_host_loses_no_acknowledged_write(cluster: Deployment) -> None:
    host_a, host_b = cluster.run.apps
    endpoint_a, endpoint_b = cluster.hosts
    with keyed_senders(cluster) as senders:
        until(lambda: _acknowledged_since(senders, 0, 3), 60, "sends before the kill", cluster)
        watched = senders[0]
        assert watched.conversation_id is not None
        socket_a = SocketListener(
            cluster,  # type: ignore[arg-type]
            watched.token,
            watched.conversation_id,
            ws=endpoint_a.ws,
            after_seq=0,
        )
        socket_a.start()
        until(lambda: _acknowledged_since(senders, socket_a.opened_at, 2), 30, "sends", cluster)

        killed = time.monotonic()
        for pid in _netns_pids(host_a.netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        until(lambda: socket_a.closed is not None, 15, "the dead host's socket closing", cluster)
        # The client resumes on the other host from the last seq it saw.
        last_seen = max(socket_a.message_seqs())
        socket_b = SocketListener(
            cluster,  # type: ignore[arg-type]
            watched.token,
            watched.conversation_id,
            ws=endpoint_b.ws,
            after_seq=last_seen,
        )
        socket_b.start()
        until(lambda: _acknowledged_since(senders, killed, 3), 60, "sends after the kill", cluster)
    _check_sends(
        senders, {200, 503, 409, "URLError", "RemoteDisconnected", "ConnectionResetError"}, killed
    )
    message_ids = check_stored_once(cluster, senders)
    with cluster.connect() as db:
        (last_seq,) = db.execute(
            "SELECT last_seq FROM messaging_conversation WHERE id = %s", [watched.conversation_id]
        ).fetchone()  # type: ignore[misc]
    until(lambda: last_seq in socket_b.message_seqs(), 15, "the resumed socket", cluster)
    socket_b.close()
    # The two sockets together saw every seq from the first one, without a gap or a repeat
    # across the hand-over.
    before, after = socket_a.message_seqs(), socket_b.message_seqs()
    assert not before & after
    assert sorted(before | after) == list(range(1, last_seq + 1))
    _check_events_once(cluster, message_ids)

    cluster.host_restart(host_a)
    cluster.all_ready()
    assert host_b.pid is not None


def _redis_pid(cluster: Deployment, port: int) -> int:
    """The data host's redis-server on `port` (Redis rewrites its title to "... addr:port")."""
    assert cluster.run.data is not None
    for pid in _netns_pids(cluster.run.data.netns):
        with contextlib.suppress(OSError):
            title = open(f"/proc/{pid}/cmdline", "rb").read().decode()  # noqa: PTH123
            if "redis-server" in title and f":{port}" in title:
                return pid
    raise AssertionError(f"no redis-server on :{port}")


def _kill_redis(cluster: Deployment, shard: int) -> None:
    os.kill(_redis_pid(cluster, REDIS_SHARD_PORTS[shard]), signal.SIGKILL)


def _ready_detail(cluster: Deployment, endpoint: Endpoint) -> str:
    status, body = cluster.ready(endpoint)
    return f"{status} {body['detail'] if isinstance(body, dict) and 'detail' in body else ''}"


def test_a_lost_redis_shard_is_named_refused_cleanly_and_recovered(cluster: Deployment) -> None:
    assert cluster.run.data is not None
    address = cluster.run.data.address
    token, customer_id = cluster.token("shards")
    body = {"message": "before", "customer_id": customer_id}
    status, answer = api(cluster.hosts[0], "POST", "/api/v1/messages/process", body, token)  # type: ignore[arg-type]
    assert status == 200, answer
    conversation_id = answer["conversation_id"]

    def stored() -> int:
        with cluster.connect() as db:
            row = db.execute(
                "SELECT count(*) FROM messaging_message WHERE conversation_id = %s",
                [conversation_id],
            ).fetchone()
        assert row is not None
        return int(row[0])

    for shard in (1, 0):  # the channel layer's second shard, then the first (also the cache)
        name = f"channel layer shard {shard + 1} (redis://{address}:{REDIS_SHARD_PORTS[shard]}/0)"
        _kill_redis(cluster, shard)
        for endpoint in cluster.hosts:
            until(
                lambda endpoint=endpoint, name=name: (  # type: ignore[misc]
                    f"{name} unreachable" in _ready_detail(cluster, endpoint)
                ),
                15,
                f"/ready naming {name}",
                cluster,
            )
            assert _ready_detail(cluster, endpoint).startswith("503 Not ready: ")
        if shard == 0:
            # The cache is gone with it: rate limits cannot be counted, so sends are refused
            # before anything is written, with a time to come back.
            before = stored()
            for endpoint in cluster.hosts:
                message = {
                    "message": "during",
                    "customer_id": customer_id,
                    "conversation_id": conversation_id,
                }
                request = api(endpoint, "POST", "/api/v1/messages/process", message, token)  # type: ignore[arg-type]
                assert request[0] == 503, request
            assert stored() == before
            retry_after = _retry_after(endpoint, token, customer_id, conversation_id)
            assert retry_after > 0
        cluster.run.redis(shard).start()
        cluster.all_ready(timeout=30)

    # Recovered: a socket on host B gets a write on host A again. (A socket that came while
    # its process still saw the outage was closed with 1013, "try again later": it does.)
    socket = _socket_retrying(cluster, token, conversation_id, cluster.hosts[1].ws)
    socket.start()
    message = {"message": "after", "customer_id": customer_id, "conversation_id": conversation_id}
    status, answer = api(cluster.hosts[0], "POST", "/api/v1/messages/process", message, token)  # type: ignore[arg-type]
    assert status == 200, answer
    seq = answer["metadata"]["customer_message_seq"]
    until(lambda: seq in socket.message_seqs(), 15, "a push after the recovery", cluster)
    socket.close()


def _socket_retrying(
    cluster: Deployment, token: str, conversation_id: int, ws: str
) -> SocketListener:
    from websockets.exceptions import ConnectionClosedError

    deadline = time.monotonic() + 15
    while True:
        try:
            return SocketListener(cluster, token, conversation_id, ws=ws)  # type: ignore[arg-type]
        except ConnectionClosedError as exc:
            refused = exc
        code = refused.rcvd.code if refused.rcvd is not None else None
        assert code == 1013, refused
        assert time.monotonic() < deadline, "the socket still refused after 15 s"
        time.sleep(0.5)


def _retry_after(endpoint: Endpoint, token: str, customer_id: int, conversation_id: int) -> int:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"{endpoint.http}/api/v1/messages/process",
        data=json.dumps(
            {"message": "during", "customer_id": customer_id, "conversation_id": conversation_id}
        ).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)  # noqa: S310 - the cluster's own host
    assert refused.value.code == 503
    return int(refused.value.headers["Retry-After"])


def test_a_postgresql_restart_under_load_loses_and_doubles_nothing(cluster: Deployment) -> None:
    with keyed_senders(cluster) as senders:
        until(lambda: _acknowledged_since(senders, 0, 3), 60, "sends before the restart", cluster)
        cluster.run.postgres().restart(down_for=2.0)
        back = time.monotonic()
        until(lambda: _acknowledged_since(senders, back, 3), 60, "sends after it", cluster)
    _check_sends(senders, {200, 503}, back)
    message_ids = check_stored_once(cluster, senders)
    _check_events_once(cluster, message_ids)
    cluster.all_ready()


def test_a_partitioned_app_host_loses_no_acknowledged_write(cluster: Deployment) -> None:
    host_a = cluster.run.apps[0]
    # A host cut off answers nothing: a client gives up on it after 5 s and moves on.
    with keyed_senders(cluster, request_timeout=5.0) as senders:
        until(lambda: _acknowledged_since(senders, 0, 3), 60, "sends before the cut", cluster)
        subprocess.run(["ip", "link", "set", host_a.veth, "down"], check=True)
        cut = time.monotonic()
        try:
            until(lambda: _acknowledged_since(senders, cut, 3), 60, "sends during it", cluster)
        finally:
            subprocess.run(
                ["ip", "link", "set", host_a.veth, "master", cluster.run.bridge, "up"], check=True
            )
        healed = time.monotonic()
        until(lambda: _acknowledged_since(senders, healed, 2), 60, "sends after it", cluster)
    # A send cut off on host A may hold its key until PostgreSQL drops the lost connection
    # (seconds, by keepalive): the other host answers 409 meanwhile and the client retries.
    _check_sends(senders, {200, 503, 409, *CUT_OFF}, cut)
    message_ids = check_stored_once(cluster, senders)
    _check_events_once(cluster, message_ids, timeout=120)
    cluster.all_ready(timeout=90)

"""Two uvicorn processes on one Redis and one database: pushes cross processes, and idle
websockets keep receiving (redis-py 8's default timeouts dropped idle consumers of the core
Redis layer).

Run by CI's second pass with REDIS_URL set; skipped on the embedded defaults, where the
in-memory channel layer cannot reach another process by design.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Iterator

import pytest
import websockets

from tests.realtime.conftest import messages_of
from tests.realtime.servers import (
    Server,
    api,
    connect,
    cross_process,
    deployment,
    frames_until,
    open_socket,
    post_message,
    running,
    sign_in,
    signed_in,
)

pytestmark = cross_process("cross-process pushes go through the Redis channel layer")

IDLE_SECONDS = 35  # longer than the 30 s socket timeout configured for the Redis layer


@pytest.fixture
def two_servers() -> Iterator[tuple[Server, ...]]:
    with running(2) as servers:
        yield servers


async def test_message_posted_to_one_process_reaches_a_socket_on_the_other(
    two_servers: tuple[Server, ...],
) -> None:
    server_a, server_b = two_servers
    token, me = await asyncio.to_thread(signed_in, server_b, "alice")
    operator_token = await asyncio.to_thread(sign_in, server_b, "olivia")
    first = await asyncio.to_thread(post_message, server_b, token, me, "Hello")
    conversation_id = first["conversation_id"]

    socket = await open_socket(
        server_a, f"/ws/conversations/{conversation_id}/", token, after_seq=first["metadata"]["seq"]
    )
    staff = await open_socket(server_a, "/ws/escalations/", operator_token)
    try:
        latencies = []
        for n in range(5):
            started = time.perf_counter()
            body = await asyncio.to_thread(
                post_message, server_b, token, me, f"Hello again {n}", conversation_id
            )
            frames = await frames_until(socket, lambda f: len(messages_of(f)) == 2)
            latencies.append(time.perf_counter() - started)
            customer_message, reply = messages_of(frames)
            assert customer_message["content"] == f"Hello again {n}"
            assert customer_message["seq"] == body["metadata"]["customer_message_seq"]
            assert (reply["id"], reply["content"]) == (body["message_id"], body["response"])
        print(
            f"POST on B → frames on A: p50 {statistics.median(latencies) * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms (includes the agent and the transaction)"
        )

        # An escalation on B reaches staff on A, and the status change reaches the customer.
        await asyncio.to_thread(
            post_message, server_b, token, me, "I want to talk to a human", conversation_id
        )
        event = json.loads(await asyncio.wait_for(staff.recv(), 10))
        assert event["type"] == "escalation.event"
        assert (event["event"], event["escalation"]["conversation_id"]) == (
            "opened",
            conversation_id,
        )
        frames = await frames_until(
            socket, lambda f: any(x["type"] == "conversation.status" for x in f)
        )
        status = next(f for f in frames if f["type"] == "conversation.status")
        assert status == {
            "type": "conversation.status",
            "status": "escalated",
            "escalation_id": event["escalation"]["id"],
        }
    finally:
        await socket.close()
        await staff.close()


async def test_idle_sockets_on_both_processes_still_receive_after_silence(
    two_servers: tuple[Server, ...],
) -> None:
    server_a, server_b = two_servers
    token, me = await asyncio.to_thread(signed_in, server_a, "alice")
    first = await asyncio.to_thread(post_message, server_a, token, me, "Hello")
    conversation_id = first["conversation_id"]
    path = f"/ws/conversations/{conversation_id}/"
    on_a = await open_socket(server_a, path, token)
    on_b = await open_socket(server_b, path, token)
    try:
        await asyncio.sleep(IDLE_SECONDS)

        # Chat over the socket on A after the silence: both sockets get the messages, B's
        # through Redis; the same client_msg_id again is a replay that writes nothing.
        frame = {"type": "message", "content": "Are you still there?", "client_msg_id": "idle-1"}
        await on_a.send(json.dumps(frame))
        frames_a = await frames_until(
            on_a, lambda f: len(messages_of(f)) == 2 and any(x["type"] == "message.ack" for x in f)
        )
        frames_b = await frames_until(on_b, lambda f: len(messages_of(f)) == 2)
        expected_seqs = [first["metadata"]["seq"] + 1, first["metadata"]["seq"] + 2]
        assert [m["seq"] for m in messages_of(frames_a)] == expected_seqs
        assert messages_of(frames_b) == messages_of(frames_a)
        ack = next(f for f in frames_a if f["type"] == "message.ack")
        assert (ack["client_msg_id"], ack["replayed"], ack["customer_message_seq"]) == (
            "idle-1",
            False,
            expected_seqs[0],
        )

        await on_a.send(json.dumps(frame))
        replay = json.loads(await asyncio.wait_for(on_a.recv(), 10))
        assert replay == {**ack, "replayed": True}
        _, history = await asyncio.to_thread(
            api, server_b, "GET", f"/api/v1/conversations/{conversation_id}/history", None, token
        )
        assert [m["seq"] for m in history["messages"]] == [1, 2, *expected_seqs]

        # And a REST post to B after the silence reaches A too.
        await asyncio.sleep(1)
        body = await asyncio.to_thread(
            post_message, server_b, token, me, "One more question", conversation_id
        )
        frames_a = await frames_until(on_a, lambda f: len(messages_of(f)) == 2)
        assert messages_of(frames_a)[1]["id"] == body["message_id"]
    finally:
        await on_a.close()
        await on_b.close()


async def _refused(server: Server, path: str, token: str) -> None:
    """Refused by the socket cap: the error frame naming the limit, then close 4429."""
    socket = await connect(server, path)
    try:
        await socket.send(json.dumps({"type": "auth", "token": token}))
        error = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert (error["type"], error["code"], error["limit"]) == ("error", "too_many_sockets", 3)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4429
    finally:
        await socket.close()


async def test_the_socket_cap_holds_across_processes_and_outlives_no_killed_process() -> None:
    """Three places for alice on a deployment of two processes: sockets on either count
    together; closing one on A lets the next open on B at once; the place of a socket whose
    process was SIGKILLed lapses within the lease (3 s here), not never."""
    with deployment(WS_MAX_SOCKETS_PER_USER="3", WS_SOCKET_LEASE_SECONDS="3") as shared:
        server_a, server_b = shared.start_server(), shared.start_server()
        token, me = await asyncio.to_thread(signed_in, server_a, "alice")
        first = await asyncio.to_thread(post_message, server_a, token, me, "Hello")
        conversation_id = first["conversation_id"]
        path = f"/ws/conversations/{conversation_id}/"
        on_a = [await open_socket(server_a, path, token), await open_socket(server_a, path, token)]
        on_b = [await open_socket(server_b, path, token)]
        try:
            await _refused(server_b, path, token)
            await _refused(server_a, path, token)

            await on_a.pop().close()
            on_b.append(await open_socket(server_b, path, token))  # at once, on the other process
            await _refused(server_b, path, token)

            server_a.process.kill()  # its socket never says goodbye
            server_a.process.wait(timeout=10)
            await _refused(server_b, path, token)  # the dead process's place is still leased
            started = asyncio.get_running_loop().time()
            while True:
                try:
                    on_b.append(await open_socket(server_b, path, token))
                    break
                except AssertionError:
                    await asyncio.sleep(0.5)
                assert asyncio.get_running_loop().time() - started < 6, "the place never lapsed"
        finally:
            for socket in on_a + on_b:
                await socket.close()
            assert server_b.process.poll() is None, server_b.log_tail()

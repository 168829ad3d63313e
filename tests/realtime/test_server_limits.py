"""Frame size limits on a real uvicorn process: the consumer refuses frames over 64 KiB with
1009 even with uvicorn's default 16 MiB limit (what `make run` starts), and
`--ws-max-size 65536` makes uvicorn refuse them before they are buffered whole."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.realtime.servers import deployment, open_socket, post_message, signed_in

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


@pytest.mark.parametrize(
    "uvicorn_args", [(), ("--ws-max-size", "65536")], ids=["app-limit", "server-limit"]
)
async def test_oversized_frame_closes_1009_and_the_server_keeps_serving(
    uvicorn_args: tuple[str, ...],
) -> None:
    with deployment() as shared:
        server = await asyncio.to_thread(shared.start_server, *uvicorn_args)
        token, me = await asyncio.to_thread(signed_in, server, "alice")
        first = await asyncio.to_thread(post_message, server, token, me, "Hello")
        path = f"/ws/conversations/{first['conversation_id']}/"
        sockets = [await open_socket(server, path, token) for _ in range(2)]
        attacker, bystander = sockets
        try:
            await attacker.send(json.dumps({"type": "message", "content": "x" * (70 * 1024)}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(attacker.recv(), 10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009
            await bystander.send(json.dumps({"type": "ping"}))
            assert json.loads(await asyncio.wait_for(bystander.recv(), 10)) == {"type": "pong"}
        finally:
            await attacker.close()
            await bystander.close()

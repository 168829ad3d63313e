"""Frame size limits on a real uvicorn process: the consumer refuses frames over 64 KiB with
1009 even with uvicorn's default 16 MiB limit (what `make run` starts), and
`--ws-max-size 65536` makes uvicorn refuse them before they are buffered whole."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.realtime.servers import api, deployment, sign_in

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


@pytest.mark.parametrize(
    "uvicorn_args", [(), ("--ws-max-size", "65536")], ids=["app-limit", "server-limit"]
)
async def test_oversized_frame_closes_1009_and_the_server_keeps_serving(
    uvicorn_args: tuple[str, ...],
) -> None:
    with deployment() as shared:
        server = await asyncio.to_thread(shared.start_server, *uvicorn_args)
        token = await asyncio.to_thread(sign_in, server, "alice")
        _, me = await asyncio.to_thread(api, server, "GET", "/api/v1/auth/me", None, token)
        status, first = await asyncio.to_thread(
            api,
            server,
            "POST",
            "/api/v1/messages/process",
            {"message": "Hello", "customer_id": me["id"], "conversation_id": None},
            token,
        )
        assert status == 200
        path = f"{server.ws}/ws/conversations/{first['conversation_id']}/"
        sockets = []
        for _ in range(2):
            socket = await websockets.connect(path, origin=server.http, open_timeout=10)  # type: ignore[arg-type]
            await socket.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "auth.ok"
            sockets.append(socket)
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

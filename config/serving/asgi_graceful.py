"""The ASGI tier of the production profile: uvicorn with a graceful websocket shutdown.

uvicorn closes open websockets with 1012 ("service restart") and drops them at once when it
receives SIGTERM. Parley's contract is 1001 ("going away") so clients know to reconnect (with
`after_seq`) elsewhere. `application` wraps config.asgi's router and remembers every accepted
websocket; `GracefulServer.shutdown` stops accepting, closes those websockets with 1001, waits
for their close handshakes, then lets uvicorn finish in-flight HTTP requests as usual.

Run one process per worker: `python -m config.serving.asgi_graceful --port 8001 [--reuse-port]`.
With --reuse-port each worker binds the port itself with SO_REUSEPORT and the kernel spreads new
connections over the workers (config/serving/serve.py starts them and forwards signals).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger("parley.serving")

# Young-generation collections after 50 000 net allocations instead of CPython's 700. A push to
# 200 sockets allocates enough to run ~75 young and one full collection in a second; the full
# one scanned every socket's objects for ~100 ms while no frame left (measured with gc
# callbacks in this process: GC time during the benchmark's fan-out 107-143 -> 9-14 ms, the
# longest collection seen ~100 -> 34 ms; docs/benchmarks.md, "Fan-out"). Cycles are still
# collected, later; the young generation stays bounded by the threshold.
GC_THRESHOLDS = (50_000, 20, 100)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

GOING_AWAY = 1001
CLOSE_HANDSHAKE_WAIT_SECONDS = 2.0


class _Socket:
    __slots__ = ("send", "accepted", "closed")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.accepted = False
        self.closed = False


class GracefulWebsockets:
    """ASGI middleware: tracks accepted websockets so shutdown can close them with 1001."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app
        self.sockets: set[_Socket] = set()
        self.closing = False
        self._drained: asyncio.Event | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        if self.closing:
            # Handshake during shutdown: refuse it (uvicorn answers 403 to a close before
            # accept); the client retries against a live worker.
            await receive()
            await send({"type": "websocket.close", "code": GOING_AWAY})
            return
        entry = _Socket(send)

        async def tracked_send(message: Message) -> None:
            kind = message["type"]
            if entry.closed and kind in ("websocket.send", "websocket.close"):
                return  # we already closed it for shutdown; the consumer has not noticed yet
            if kind == "websocket.accept":
                entry.accepted = True
            elif kind == "websocket.close":
                entry.closed = True
            await send(message)

        self.sockets.add(entry)
        try:
            await self.app(scope, receive, tracked_send)
        finally:
            self.sockets.discard(entry)
            if self._drained is not None and not self.sockets:
                self._drained.set()

    async def wait_drained(self, seconds: float) -> None:
        """Until every websocket's consumer has finished, or `seconds` have passed."""
        if not self.sockets:
            return
        self._drained = asyncio.Event()
        try:
            await asyncio.wait_for(self._drained.wait(), seconds)
        except TimeoutError:
            logger.warning("%d websocket(s) still open after %.1f s", len(self.sockets), seconds)

    @property
    def open_count(self) -> int:
        return sum(1 for s in self.sockets if s.accepted and not s.closed)

    async def close_all(self, code: int = GOING_AWAY) -> int:
        """Send a close frame to every accepted websocket; returns how many were closed."""
        self.closing = True
        closed = 0
        for entry in list(self.sockets):
            if not entry.accepted or entry.closed:
                continue
            entry.closed = True
            try:
                await entry.send(
                    {"type": "websocket.close", "code": code, "reason": "server shutting down"}
                )
                closed += 1
            except Exception:  # noqa: BLE001 - the peer may be gone already
                logger.debug("websocket already gone at shutdown", exc_info=True)
        return closed


class GracefulServer(uvicorn.Server):
    """uvicorn.Server that closes websockets with 1001 before its own shutdown sequence."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()  # no new connections from here on
        app = _graceful_app()
        if app is not None:
            count = await app.close_all(GOING_AWAY)
            if count:
                logger.info("closed %d websocket(s) with 1001", count)
                # Let the close handshakes and the consumers' disconnect handlers run.
                await app.wait_drained(CLOSE_HANDSHAKE_WAIT_SECONDS)
        await super().shutdown(sockets)


_APP: GracefulWebsockets | None = None


def _graceful_app() -> GracefulWebsockets | None:
    return _APP


def _build_application() -> GracefulWebsockets:
    global _APP
    from config.asgi import application as parley_asgi

    _APP = GracefulWebsockets(parley_asgi)
    return _APP


def __getattr__(name: str) -> Any:
    # `config.serving.asgi_graceful:application` is built on first access, after uvicorn
    # configured logging and the environment is final.
    if name == "application":
        return _APP or _build_application()
    raise AttributeError(name)


def bind(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--reuse-port", action="store_true")
    parser.add_argument("--graceful-timeout", type=float, default=20.0)
    parser.add_argument("--ws-max-size", type=int, default=65536)
    args = parser.parse_args(argv)
    gc.set_threshold(*GC_THRESHOLDS)

    config = uvicorn.Config(
        "config.serving.asgi_graceful:application",
        host=args.host,
        port=args.port,
        lifespan="off",
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=args.ws_max_size,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_graceful_shutdown=args.graceful_timeout,
        access_log=False,
        server_header=False,
        proxy_headers=False,  # RATELIMIT_IP_META_KEY decides which header to trust
        log_level=os.environ.get("UVICORN_LOG_LEVEL", "warning"),
    )
    server = GracefulServer(config)
    sock = bind(args.host, args.port, reuse_port=args.reuse_port)
    server.run(sockets=[sock])


if __name__ == "__main__":
    # Run from the importable module, not __main__: uvicorn imports
    # `config.serving.asgi_graceful` for the application, and GracefulServer must see that
    # module's registry of open websockets.
    from config.serving.asgi_graceful import main as _main

    _main()

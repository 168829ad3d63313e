"""A real HTTP webhook receiver on 127.0.0.1: records every request and answers from a script.
Used in-process by the integration tests and by the fault tests for a deployment's worker."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    # The request target exactly as sent (http.server turns a leading "//" into "/" in `path`).
    target: str = ""

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records every request; answers from `script` (per path, consumed in order), then 200."""

    base_url: str
    requests: list[Received] = field(default_factory=list)
    script: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # While set to an unset Event, each request is recorded, then answered only once the Event
    # is set: a slow receiver whose pace the test controls.
    hold: threading.Event | None = None

    def url(self, path: str = "/hook") -> str:
        return f"{self.base_url}{path}"

    def answer(self, path: str, *responses: int | tuple[int, dict[str, str]]) -> None:
        self.script[path] = [r if isinstance(r, tuple) else (r, {}) for r in responses]

    def events(self, path: str = "/hook") -> list[dict[str, Any]]:
        with self.lock:
            return [r.json for r in self.requests if r.path == path]


@contextlib.contextmanager
def receiver_running(host: str = "127.0.0.1") -> Iterator[Receiver]:
    """A receiver listening on a free port of `host` (loopback, or the root namespace's
    address on a test cluster's bridge) until the block ends."""
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            rec = state["receiver"]
            with rec.lock:
                rec.requests.append(
                    Received(
                        path=self.path,
                        headers=dict(self.headers.items()),
                        body=body,
                        target=self.requestline.split(" ")[1],
                    )
                )
                queue = rec.script.get(self.path) or []
                status, headers = queue.pop(0) if queue else (200, {})
                hold = rec.hold
            if hold is not None:
                hold.wait(timeout=60)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    state["receiver"] = Receiver(base_url=f"http://{host}:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["receiver"]
    finally:
        server.shutdown()
        server.server_close()

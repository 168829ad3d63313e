"""A Parley deployment of a fault test's own, started the way an operator starts one: `make serve`
or `make run` on a PostgreSQL and a Redis of the test's own (deploy/services.py), which
the test may then restart or kill; accounts and a webhook endpoint to a receiver on 127.0.0.1;
and keyed senders that retry each message with its key until it is acknowledged.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from cryptography.fernet import Fernet

from deploy.services import (
    PostgresServer,
    RedisServer,
    free_port,
    postgres_server,
    redis_server,
)
from tests.realtime.servers import PASSWORD, Server, api
from tests.receiver import Receiver, receiver_running

BASE_DIR = Path(__file__).resolve().parents[2]
DATABASE = "parley"
SENDERS = ("sender1", "sender2", "sender3", "sender4")

SEED = f"""
from accounts.models import User
from integrations.services import webhook_endpoint_create
from messaging.events import EVENT_TYPES
import os
for name in {SENDERS!r}:
    User.objects.create_user(name, name + "@example.com", {PASSWORD!r})
root = User.objects.create_superuser("faultroot", "faultroot@example.com", {PASSWORD!r})
if os.environ.get("FAULT_RECEIVER"):
    webhook_endpoint_create(actor=root, url=os.environ["FAULT_RECEIVER"], events=list(EVENT_TYPES))
"""


@dataclass
class Parley:
    """One running profile (`make serve` or `make run`) and what it runs on."""

    profile: str
    pg: PostgresServer
    redis: RedisServer
    env: dict[str, str]
    http: Server  # the public port: REST (and, for `make run`, websockets)
    ws_port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def processes(self) -> dict[int, str]:
        """Every process of the profile (its process group): pid → command line."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getpgid(int(entry.name)) != self.process.pid:
                    continue
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, ProcessLookupError):
                continue
            if command.strip():
                found[int(entry.name)] = command.strip()
        return found

    def connect(self) -> psycopg.Connection[Any]:
        """A connection of the test's own to the deployment's database (for its assertions)."""
        return psycopg.connect(self.pg.url(DATABASE), autocommit=True)

    def manage(self, *args: str, extra_env: dict[str, str] | None = None) -> None:
        done = subprocess.run(  # noqa: S603 - our interpreter and manage.py
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]

    def token(self, username: str) -> tuple[str, int]:
        status, body = api(
            self.http, "POST", "/api/v1/auth/token", {"username": username, "password": PASSWORD}
        )
        assert status == 200, body
        status, me = api(self.http, "GET", "/api/v1/auth/me", token=body["access_token"])
        assert status == 200, me
        return str(body["access_token"]), int(me["id"])


def wait_for(url: str, *, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not up after {timeout:.0f} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


@contextlib.contextmanager
def parley_running(
    profile: str,
    pg: PostgresServer,
    redis: RedisServer,
    *,
    receiver_url: str = "",
    extra_env: dict[str, str] | None = None,
) -> Iterator[Parley]:
    """`make serve` (profile "serve": granian + uvicorn + run_worker under the supervisor,
    DEBUG=0) or `make run` ("run": uvicorn + run_worker, DEBUG=1) on a fresh database of `pg`,
    seeded with SENDERS and, given `receiver_url`, a webhook endpoint for every event there.
    Stopped with SIGTERM (then SIGKILL) afterwards."""
    database_url = pg.create_database(DATABASE)
    port, ws_port = free_port(), free_port()
    inherited = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env = {
        **inherited,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis.url(0),
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "CHANNEL_PREFIX": f"parley-fault-{secrets.token_hex(4)}",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WS_PORT": str(ws_port),
        "WEB_WORKERS": "1",
        "SERVE_FRONT": "none",
        "RATE_LIMIT_MESSAGES": "100000/m",
        "RATE_LIMIT_LOGIN": "1000/m",
        "WEBHOOK_ALLOW_PRIVATE_HOSTS": "1",
        "WEBHOOK_RETRY_BASE_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        "DEBUG": "0" if profile == "serve" else "1",
        **(extra_env or {}),
    }
    workdir = Path(tempfile.mkdtemp(prefix=f"parley-{profile}-"))
    log_path = workdir / "parley.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["make", "--no-print-directory", profile],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped (and listed) as one
        )
    parley = Parley(
        profile=profile,
        pg=pg,
        redis=redis,
        env=env,
        http=Server(port=port, process=process, log_path=log_path),
        ws_port=port if profile == "run" else ws_port,
        process=process,
        log_path=log_path,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health", process=process, log=log_path, timeout=120)
        if profile == "serve":
            wait_for(
                f"http://127.0.0.1:{ws_port}/health", process=process, log=log_path, timeout=60
            )
        parley.manage("shell", "-c", SEED, extra_env={"FAULT_RECEIVER": receiver_url})
        yield parley
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # anything left of the group
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def parley_on_own_services(
    profile: str, *, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[Parley, Receiver]]:
    """`parley_running` on a PostgreSQL and a Redis of its own (`parley.pg`, `parley.redis`,
    to restart or kill), with every event's webhook going to a receiver on 127.0.0.1."""
    with (
        postgres_server() as pg,
        redis_server() as redis,
        receiver_running() as receiver,
        parley_running(
            profile, pg, redis, receiver_url=receiver.url(), extra_env=extra_env
        ) as parley,
    ):
        yield parley, receiver


@dataclass
class Send:
    """One message with its key, retried with that key until acknowledged."""

    key: str
    text: str
    first_try: float
    statuses: list[int | str] = field(default_factory=list)
    acknowledged: float | None = None
    body: dict[str, Any] | None = None


class KeyedSender(threading.Thread):
    """Sends messages into one conversation of its own, each with its own Idempotency-Key,
    retrying a message (same key, same body) after anything but a 200, as a client should."""

    def __init__(
        self,
        parley: Parley,
        username: str,
        *,
        pause: float = 0.05,
        retry_after: float = 0.25,
        endpoints: list[Any] | None = None,
    ) -> None:
        super().__init__(name=f"sender-{username}", daemon=True)
        self.parley = parley
        self.username = username
        self.token, self.customer_id = parley.token(username)
        # Where to send (anything with `.http`, the base URL): a retry goes to the next one, as
        # a client of several hosts moves on from one that failed it.
        self.endpoints = endpoints or [parley.http]
        self.current = 0
        # Keys of this sender's own: another sender of the same user on the same deployment
        # (a later test) must not replay these.
        self.tag = secrets.token_hex(3)
        # How long one try waits for its answer (a host cut off answers nothing at all).
        self.request_timeout = 30.0
        self.pause = pause
        self.retry_after = retry_after
        self.sends: list[Send] = []
        self.conversation_id: int | None = None
        self.stopping = threading.Event()
        self.give_up_after = 60.0

    def run(self) -> None:
        number = 0
        while not self.stopping.is_set():
            number += 1
            self._send(number)
            time.sleep(self.pause)

    def _send(self, number: int) -> None:
        send = Send(
            key=f"{self.username}-{self.tag}-{number}",
            text=f"{self.username} message {number}",
            first_try=time.monotonic(),
        )
        self.sends.append(send)
        body = {
            "message": send.text,
            "customer_id": self.customer_id,
            "conversation_id": self.conversation_id,
        }
        while time.monotonic() - send.first_try < self.give_up_after:
            try:
                status, answer = api(
                    self.endpoints[self.current],
                    "POST",
                    "/api/v1/messages/process",
                    body,
                    self.token,
                    headers={"Idempotency-Key": send.key},
                    timeout=self.request_timeout,
                )
            except OSError as exc:  # the connection itself failed: no answer at all
                status, answer = type(exc).__name__, None
            send.statuses.append(status)
            if status == 200:
                send.acknowledged, send.body = time.monotonic(), answer
                self.conversation_id = answer["conversation_id"]
                return
            self.current = (self.current + 1) % len(self.endpoints)
            time.sleep(self.retry_after)

    def acknowledged(self) -> list[Send]:
        return [s for s in self.sends if s.acknowledged is not None]


@contextlib.contextmanager
def senders_running(
    parley: Any, count: int = 4, *, request_timeout: float = 30.0, **options: Any
) -> Iterator[list[KeyedSender]]:
    """`count` keyed senders (KeyedSender's `options`: pause, endpoints ...), stopped and
    joined when the block ends."""
    senders = [KeyedSender(parley, name, **options) for name in SENDERS[:count]]
    for sender in senders:
        sender.request_timeout = request_timeout
    for sender in senders:
        sender.start()
    try:
        yield senders
    finally:
        for sender in senders:
            sender.stopping.set()
        for sender in senders:
            sender.join(90)


class SocketListener(threading.Thread):
    """A websocket on a conversation, authenticated, recording every frame it receives."""

    def __init__(
        self,
        parley: Parley,
        token: str,
        conversation_id: int,
        *,
        ws: str | None = None,
        after_seq: int | None = None,
    ) -> None:
        """`ws`: the websocket server's base URL (default: the profile's on 127.0.0.1);
        `after_seq`: resume after that seq (the replay comes first), else live from now."""
        super().__init__(daemon=True)
        from websockets.sync.client import connect

        ws = ws or f"ws://127.0.0.1:{parley.ws_port}"
        origin = "http" + ws.removeprefix("ws")
        self._closing = contextlib.ExitStack()
        self.socket = self._closing.enter_context(
            connect(
                f"{ws}/ws/conversations/{conversation_id}/",
                origin=origin,  # type: ignore[arg-type]
                open_timeout=10,
            )
        )
        auth: dict[str, Any] = {"type": "auth", "token": token}
        if after_seq is not None:
            auth["after_seq"] = after_seq
        self.socket.send(json.dumps(auth))
        first = json.loads(self.socket.recv(timeout=10))
        assert first["type"] == "auth.ok", first
        self.frames: list[dict[str, Any]] = []
        self.closed: Any = None
        self.opened_at = time.monotonic()
        # Frames are handled in order: the pong says the auth frame's replay is done too.
        self.socket.send(json.dumps({"type": "ping"}))
        while (frame := json.loads(self.socket.recv(timeout=10)))["type"] != "pong":
            self.frames.append(frame)

    def run(self) -> None:
        try:
            for raw in self.socket:
                self.frames.append(json.loads(raw))
        except Exception as exc:  # noqa: BLE001 - recorded: the test asserts it never happens
            self.closed = exc
        else:
            self.closed = self.socket.close_code

    def message_seqs(self) -> set[int]:
        return {f["message"]["seq"] for f in self.frames if f["type"] == "message"}

    def send(self, frame: dict[str, Any]) -> None:
        self.socket.send(json.dumps(frame))

    def close(self) -> None:
        self._closing.close()
        self.join(10)


def until(done: Callable[[], bool], timeout: float, what: str, parley: Any) -> None:
    """Wait for `done`; fail naming `what`, with the deployment's log's tail."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s\n{parley.log_tail()}"
        time.sleep(0.1)


def check_stored_once(parley: Any, senders: list[KeyedSender]) -> list[int]:
    """Every acknowledged message exactly once, in order, seqs 1..n; the ids of all messages."""
    message_ids: list[int] = []
    with parley.connect() as db:
        for sender in senders:
            rows = db.execute(
                "SELECT id, seq, role, content FROM messaging_message "
                "WHERE conversation_id = %s ORDER BY seq",
                [sender.conversation_id],
            ).fetchall()
            last_seq = db.execute(
                "SELECT last_seq FROM messaging_conversation WHERE id = %s",
                [sender.conversation_id],
            ).fetchone()
            assert last_seq is not None
            assert [seq for _, seq, _, _ in rows] == list(range(1, len(rows) + 1))
            assert last_seq[0] == len(rows)
            customer = [content for _, _, role, content in rows if role == "customer"]
            assert customer == [send.text for send in sender.sends]
            acknowledged_seqs = [s.body["metadata"]["customer_message_seq"] for s in sender.sends]
            stored_seqs = [seq for _, seq, role, _ in rows if role == "customer"]
            assert acknowledged_seqs == stored_seqs
            message_ids += [message_id for message_id, _, _, _ in rows]
    return message_ids


def check_delivered(
    parley: Any, receiver: Receiver, message_ids: list[int], timeout: float = 90
) -> None:
    """The worker delivered message.created for every message: before, during and after."""

    def delivered() -> set[int]:
        return {
            event["data"]["id"] for event in receiver.events() if event["type"] == "message.created"
        }

    until(
        lambda: set(message_ids) <= delivered(),
        timeout,
        f"{len(set(message_ids) - delivered())} message.created events undelivered",
        parley,
    )


def postgres_pass_reason(variable: str, what: str) -> str | None:
    """Why tests that start servers of their own skip this pass: they run once, in CI's
    PostgreSQL + Redis pass; `variable`=1 runs them in any pass, 0 in none."""
    wanted = os.environ.get(variable, "")
    if wanted == "0":
        return f"{variable}=0"
    if wanted != "1" and not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        return (
            f"{what} run once, in CI's PostgreSQL + Redis pass (DATABASE_URL set); "
            f"{variable}=1 runs them here"
        )
    return None

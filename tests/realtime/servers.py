"""Real uvicorn server processes for the cross-process and browser tests.

Each test gets a throwaway database the servers share: a temp-file SQLite database, or — when
the suite runs on PostgreSQL (DATABASE_URL) — a dedicated database created here and dropped
afterwards. It is migrated and seeded by `manage.py` subprocesses, exactly as in production.
With REDIS_URL set, the servers use the Redis cache and channel layer, under a channel prefix
of their own so that concurrent runs on one Redis never hear each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
PASSWORD = "parley-test-pass-2026"
SEED_SCRIPT = f"""
from accounts.models import User
User.objects.create_user("alice", "alice@example.com", {PASSWORD!r}, first_name="Alice")
User.objects.create_user("bob", "bob@example.com", {PASSWORD!r}, first_name="Bob")
olivia = User.objects.create_user("olivia", "olivia@example.com", {PASSWORD!r},
                                  first_name="Olivia", is_staff=True)
# An operator, as seed_demo makes one: staff in the Operators group (escalations.permissions).
from escalations.services import operators_group_ensure
olivia.groups.add(operators_group_ensure())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """A DATABASE_URL for a fresh, empty database; removed afterwards."""
    configured = os.environ.get("DATABASE_URL", "")
    if configured.startswith(("postgres://", "postgresql://")):
        import psycopg

        parts = urlsplit(configured)
        name = f"parley_rt_{secrets.token_hex(6)}"
        admin = urlunsplit(parts._replace(path="/postgres"))
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(parts._replace(path=f"/{name}"))
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    else:
        directory = tempfile.mkdtemp(prefix="parley-rt-")
        try:
            yield f"sqlite:///{directory}/db.sqlite3"
        finally:
            shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Deployment:
    """One database (and Redis, if configured) shared by one or more server processes."""

    env: dict[str, str]
    workdir: Path
    servers: list[Server] = field(default_factory=list)

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )

    def start_server(self, *uvicorn_args: str, port: int | None = None) -> Server:
        """Serve like `make run` (uvicorn, --lifespan off), plus `uvicorn_args`."""
        port = port or free_port()
        log_path = self.workdir / f"server-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "config.asgi:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--lifespan",
                    "off",
                    "--no-access-log",
                    *uvicorn_args,
                ],
                cwd=BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = Server(port=port, process=process, log_path=log_path)
        self.servers.append(server)
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(f"{server.http}/health", timeout=2) as response:
                    if response.status == 200:
                        return server
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{server.log_tail()}")
            time.sleep(0.1)

    def stop(self, servers: list[Server] | None = None) -> None:
        for server in servers or self.servers:
            if server.process.poll() is None:
                server.process.terminate()
        for server in servers or self.servers:
            try:
                server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=10)


@contextlib.contextmanager
def deployment(**extra_env: str) -> Iterator[Deployment]:
    """Migrated and seeded database (users alice, bob: customers; olivia: staff; password
    PASSWORD), ready for `start_server()`."""
    workdir = Path(tempfile.mkdtemp(prefix="parley-servers-"))
    with throwaway_database() as database_url:
        inherited = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env = {
            **inherited,
            "DATABASE_URL": database_url,
            "DEBUG": "1",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
            "CHANNEL_PREFIX": f"parley-test-{secrets.token_hex(4)}",
            "CACHE_KEY_PREFIX": f"parley-test-{secrets.token_hex(4)}",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        deployment = Deployment(env=env, workdir=workdir)
        try:
            deployment.manage("migrate", "--noinput")
            deployment.manage("shell", "-c", SEED_SCRIPT)
            yield deployment
        finally:
            deployment.stop()
            shutil.rmtree(workdir, ignore_errors=True)


def api(
    server: Server,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, Any]:
    """A JSON request to a server (standard library only: no event loop involved)."""
    request = urllib.request.Request(
        f"{server.http}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


def sign_in(server: Server, username: str) -> str:
    status, body = api(
        server, "POST", "/api/v1/auth/token", {"username": username, "password": PASSWORD}
    )
    assert status == 200, body
    return str(body["access_token"])


def cross_process(why: str) -> list[pytest.MarkDecorator]:
    """The marks of a test of several server processes that meet through Redis: skipped on the
    embedded defaults, where the in-memory channel layer cannot reach another process by
    design (`why` says what needs the other process)."""
    return [
        pytest.mark.asyncio,
        pytest.mark.slow,
        pytest.mark.redis,
        pytest.mark.skipif(
            not os.environ.get("REDIS_URL"),
            reason=f"needs REDIS_URL: {why} (CI's second pass sets it)",
        ),
    ]


@contextlib.contextmanager
def running(count: int, **extra_env: str) -> Iterator[tuple[Server, ...]]:
    """`count` servers on one deployment (`extra_env`: its settings). Each must still be
    running when the test is done: a crash the test did not look for fails it too."""
    with deployment(**extra_env) as shared:
        servers = tuple(shared.start_server() for _ in range(count))
        yield servers
        for server in servers:
            assert server.process.poll() is None, server.log_tail()


def customer_id(server: Server, token: str) -> int:
    """The id of the user holding `token` (`GET /auth/me`)."""
    status, me = api(server, "GET", "/api/v1/auth/me", None, token)
    assert status == 200, me
    return int(me["id"])


def signed_in(server: Server, username: str) -> tuple[str, int]:
    """`username` signed in on `server`: the access token and the user's id."""
    token = sign_in(server, username)
    return token, customer_id(server, token)


def post_message(
    server: Server, token: str, customer: int, text: str, conversation_id: int | None = None
) -> dict[str, Any]:
    """`POST /messages/process` as customer `customer` (`token`'s holder), which must succeed:
    its body."""
    status, body = api(
        server,
        "POST",
        "/api/v1/messages/process",
        {"message": text, "customer_id": customer, "conversation_id": conversation_id},
        token,
    )
    assert status == 200, body
    return dict(body)


def first_message(server: Server, username: str, text: str) -> tuple[str, dict[str, Any]]:
    """`username` signs in and opens a conversation with `text`: their token, and the answer."""
    token, me = signed_in(server, username)
    return token, post_message(server, token, me, text)


def staff_post(
    server: Server, token: str, conversation_id: int, action: str, body: dict[str, Any]
) -> int:
    """An operator's `POST /escalations/{conversation_id}/{action}` (reply, resolve, ...) on
    `server`: the status it answered."""
    path = f"/api/v1/escalations/{conversation_id}/{action}"
    status, _ = api(server, "POST", path, body, token)
    return status


async def connect(server: Server, path: str) -> Any:
    """A websocket to `path` on `server`, from the server's own origin, not yet authenticated.
    No client pings: a test's silence is silence (an idle socket must survive it)."""
    import websockets

    return await websockets.connect(
        f"{server.ws}{path}",
        origin=server.http,  # type: ignore[arg-type]
        ping_interval=None,
        open_timeout=10,
    )


async def open_socket(server: Server, path: str, token: str, **auth: Any) -> Any:
    """`connect`, then the auth frame (`auth`: its further fields), answered by auth.ok."""
    socket = await connect(server, path)
    await socket.send(json.dumps({"type": "auth", "token": token, **auth}))
    ok = json.loads(await asyncio.wait_for(socket.recv(), 10))
    assert ok["type"] == "auth.ok", ok
    return socket


async def frames_until(
    socket: Any, done: Callable[[list[dict[str, Any]]], bool], within: float = 10
) -> list[dict[str, Any]]:
    """The frames `socket` receives until `done(frames)` holds (fails after `within` s)."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(within):
        while not done(frames):
            frames.append(json.loads(await socket.recv()))
    return frames

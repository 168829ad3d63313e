"""deploy/services.py itself: a PostgreSQL and a Redis of the test's own, which restart,
die and come back as asked -- also inside a network namespace, where the host cannot see them."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis

from deploy.services import free_port, postgres_server, redis_server

pytestmark = pytest.mark.slow


def _refused(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        try:
            sock.connect((host, port))
        except OSError:
            return True
    return False


def test_postgres_restarts_with_downtime_and_survives_a_kill() -> None:
    with postgres_server() as pg:
        url = pg.create_database("servicecheck")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (n int)")
            conn.execute("INSERT INTO kept VALUES (1)")

        refused_during: list[bool] = []
        probe = threading.Timer(0.6, lambda: refused_during.append(_refused(pg.host, pg.port)))
        probe.start()
        started = time.monotonic()
        pg.restart(down_for=1.5)
        probe.join()
        assert time.monotonic() - started >= 1.5
        assert refused_during == [True]

        first_pid = pg.pid()
        pg.kill()
        assert pg.pid() is None
        assert _refused(pg.host, pg.port)
        pg.start()
        assert pg.pid() not in (None, first_pid)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT n FROM kept").fetchall() == [(1,)]


def test_redis_restarts_empty() -> None:
    with redis_server() as server:
        client = redis.Redis.from_url(server.url(), socket_timeout=2)
        client.set("k", "v")
        server.restart(down_for=0.2)
        assert client.get("k") is None  # no persistence: a cache Redis restarted empty
        server.kill()
        assert _refused(server.host, server.port)


@contextlib.contextmanager
def _namespace() -> Iterator[str]:
    name = f"parley-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None, reason="network namespaces need root and ip"
)
def test_both_run_inside_a_network_namespace() -> None:
    """For multi-host tests: each "host" a namespace with servers the others reach only over
    the links the test builds (the host's loopback does not see them)."""
    # Ports nothing on the host listens on, so "refused on the host" means "not visible".
    pg_port, redis_port = free_port(), free_port()
    with (
        _namespace() as netns,
        postgres_server(netns=netns, port=pg_port) as pg,
        redis_server(netns=netns, port=redis_port) as server,
    ):
        assert pg.accepting()
        assert server.accepting()
        assert pg.sql("SELECT 41 + 1") == "42"
        pg.restart(down_for=0.2)
        assert pg.sql("SELECT 1") == "1"
        assert _refused("127.0.0.1", pg_port)  # not on the host's loopback
        assert _refused("127.0.0.1", redis_port)

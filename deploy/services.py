"""PostgreSQL and Redis servers of a test's own -- or of the multi-host run's data host
(deploy/cluster.py) -- to stop, restart and kill at will.

The machine's PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) are shared: a test that
takes a dependency away starts its own and harms nothing else.

    with postgres_server() as pg, redis_server() as redis:
        url = pg.create_database("parley")      # postgres://postgres@127.0.0.1:PORT/parley
        ...
        pg.restart(down_for=2.0)                # a fast restart with 2 s of downtime
        redis.restart()

Both work inside a network namespace too (`netns="ns1"`, `host=` the namespace's address):
every command then runs through `ip netns exec`, and the caller picks the port (a namespace
of its own has every port free). The server's files live in a temporary folder, removed on
exit; its log stays readable (`log_tail()`) until then.

PostgreSQL refuses to run as root: when the test runs as root the folder belongs to
`postgres` and initdb/pg_ctl run through `runuser -u postgres`. Durability is off
(`fsync=off`): these servers hold test data, and a fast restart still checkpoints.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from deploy.hosts import REDIS_ARGS

POSTGRES_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
START_TIMEOUT = 30.0


class ServiceError(RuntimeError):
    """A server did not start or stop as asked; the message carries its log's tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (on this network namespace's `host`)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def postgres_binary(name: str) -> str:
    """`initdb`, `pg_ctl`, `postgres` ...: the newest installed server's, else from PATH."""
    for directory in POSTGRES_BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if found is None:
        raise ServiceError(f"{name} not found: install the PostgreSQL server package")
    return found


def postgres_available() -> bool:
    """Whether this machine can run a PostgreSQL server of a test's own."""
    try:
        postgres_binary("initdb")
        postgres_binary("pg_ctl")
    except ServiceError:
        return False
    return os.geteuid() != 0 or shutil.which("runuser") is not None


def redis_available() -> bool:
    return shutil.which("redis-server") is not None


def wait_for_port(host: str, port: int, *, timeout: float, netns: str | None = None) -> None:
    """Until something accepts TCP connections on host:port (checked from inside `netns`)."""
    deadline = time.monotonic() + timeout
    while True:
        if netns is None:
            try:
                with socket.create_connection((host, port), timeout=1):
                    return
            except OSError:
                pass
        else:
            probe = f"import socket; socket.create_connection(({host!r}, {port}), timeout=1)"
            done = subprocess.run(
                ["ip", "netns", "exec", netns, "python3", "-c", probe],
                capture_output=True,
                check=False,
            )
            if done.returncode == 0:
                return
        if time.monotonic() > deadline:
            raise ServiceError(f"nothing listens on {host}:{port} after {timeout:.0f} s")
        time.sleep(0.1)


@dataclass
class _Service:
    """What both servers share: a folder, an address, a namespace, a log."""

    directory: Path
    port: int
    host: str = "127.0.0.1"
    netns: str | None = None

    def _prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def accepting(self) -> bool:
        """Whether the server accepts connections right now (only from the same namespace)."""
        try:
            wait_for_port(self.host, self.port, timeout=0, netns=self.netns)
        except ServiceError:
            return False
        return True


@dataclass
class PostgresServer(_Service):
    """A PostgreSQL cluster in `directory`, listening on host:port (TCP) and on a Unix socket
    in the same folder. Trust authentication for the `postgres` role."""

    settings: dict[str, str] = field(default_factory=dict)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@{self.host}:{self.port}/{database}"

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    def _as_postgres(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        runas = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*self._prefix(), *runas, *command],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise ServiceError(
                f"{' '.join(command[:2])} failed ({done.returncode}): "
                f"{done.stderr.strip() or done.stdout.strip()}\n{self.log_tail()}"
            )
        return done

    def init(self) -> None:
        self._as_postgres(
            postgres_binary("initdb"),
            "-D",
            str(self.data_dir),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale",
            "C.UTF-8",
        )

    def trust_network(self, cidr: str) -> None:
        """Let clients from `cidr` connect as any role without a password (the private network
        of deploy/cluster.py's hosts); before `start`."""
        hba = self.data_dir / "pg_hba.conf"
        with hba.open("a") as lines:
            lines.write(f"host all all {cidr} trust\n")

    def _options(self) -> str:
        options = {
            "port": str(self.port),
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.directory),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            **self.settings,
        }
        return " ".join(f"-c {name}={value}" for name, value in options.items())

    def start(self) -> None:
        self._as_postgres(
            postgres_binary("pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_path),
            "-o",
            self._options(),
            "-w",
            "-t",
            str(int(START_TIMEOUT)),
            "start",
        )
        wait_for_port(self.host, self.port, timeout=START_TIMEOUT, netns=self.netns)

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop: `fast` ends every session at once (what a restart or failover does),
        `immediate` is a crash without a checkpoint, `smart` waits for sessions to end."""
        if self.pid() is None:
            return
        self._as_postgres(
            postgres_binary("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"
        )

    def restart(self, *, down_for: float = 0.0, mode: str = "fast") -> None:
        """Stop (every connection ends), stay down `down_for` seconds, start again."""
        self.stop(mode)
        time.sleep(down_for)
        self.start()

    def kill(self) -> None:
        """SIGKILL the postmaster (its backends follow): a crashed host, no shutdown at all."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)

    def pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement through psql over the Unix socket; its unaligned output."""
        done = self._as_postgres(
            postgres_binary("psql"),
            "-h",
            str(self.directory),
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-tAc",
            statement,
        )
        return done.stdout.strip()

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name` (a plain identifier); its URL."""
        self.sql(f'CREATE DATABASE "{_plain_name(name)}"')
        return self.url(name)

    def connections(self, database: str) -> int:
        """Client sessions open on `database` now."""
        name = _plain_name(database)
        count = self.sql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'")  # noqa: S608
        return int(count)


@dataclass
class RedisServer(_Service):
    """A redis-server without persistence (like a cache Redis restarted empty)."""

    process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                *self._prefix(),
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                *REDIS_ARGS,
                "--bind",
                self.host,
                "--dir",
                str(self.directory),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C meant for the command that started it (`make cluster`)
            # does not reach it.
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_port(self.host, self.port, timeout=START_TIMEOUT, netns=self.netns)
        except ServiceError as exc:
            raise ServiceError(f"{exc}\n{self.log_tail()}") from None

    def stop(self) -> None:
        """SIGTERM: Redis closes every client connection and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def restart(self, *, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def _plain_name(name: str) -> str:
    if not (name.isascii() and name.replace("_", "").isalnum()):
        raise ValueError(f"not a plain database name: {name!r}")
    return name


def _wait_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.05)
    raise ServiceError(f"process {pid} still alive after SIGKILL")


def _own_folder(prefix: str, *, for_postgres: bool) -> Path:
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    directory.chmod(0o755)
    if for_postgres and os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
        directory.chmod(0o700)
    return directory


@contextlib.contextmanager
def postgres_server(
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    netns: str | None = None,
    settings: dict[str, str] | None = None,
) -> Iterator[PostgresServer]:
    """A fresh, running PostgreSQL cluster; stopped (immediately) and removed afterwards.
    `settings`: extra `-c name=value` server settings (e.g. max_connections)."""
    directory = _own_folder("parley-pg-", for_postgres=True)
    server = PostgresServer(
        directory=directory,
        port=port or free_port(host if netns is None else "127.0.0.1"),
        host=host,
        netns=netns,
        settings=dict(settings or {}),
    )
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(ServiceError, subprocess.SubprocessError):
            server.stop("immediate")
        with contextlib.suppress(ServiceError, OSError):
            server.kill()
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def redis_server(
    *, port: int | None = None, host: str = "127.0.0.1", netns: str | None = None
) -> Iterator[RedisServer]:
    """A running redis-server of the caller's own; killed and removed afterwards."""
    directory = _own_folder("parley-redis-", for_postgres=False)
    server = RedisServer(
        directory=directory,
        port=port or free_port(host if netns is None else "127.0.0.1"),
        host=host,
        netns=netns,
    )
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(directory, ignore_errors=True)

"""A Parley deployment of several hosts on one machine, in network namespaces.

    python -m deploy.cluster up [--hosts 2] [--port 8080]   # `make cluster`
    python -m deploy.cluster status
    python -m deploy.cluster down                           # `make cluster-down`
    python -m deploy.cluster bench [--hosts 2]              # cross-node push latency

What `up` builds (root only; iproute2, PostgreSQL's server binaries, redis-server, nginx):
- a bridge of the run's own with a private /24 (10.231.<n>.0/24, the first one free on this
  machine) that exists only on this machine: the hosts' traffic never leaves it;
- a data host (its own network namespace, .2): PostgreSQL (initdb in a temporary folder) and
  two Redis servers, the channel layer's two shards (the first also the cache);
- N application hosts (.11, .12, ...), each a namespace running `make serve`'s entry point
  exactly as deploy/hosts.py says (the container image runs the same command);
- nginx in front, in the root namespace on 127.0.0.1:--port, balancing REST over every host's
  web server and /ws/ over every host's websocket server.

Names are unique per run (`pc<id>-data`, `pc<id>-app1`, bridge `pcb<id>`), so runs side by
side never collide. Each run is recorded in .local/cluster/<id>.json; `down` tears down the
runs recorded there that `up` started, and any whose owner (a test session) died. Tear-down
kills every process in the run's namespaces (`ip netns pids`), deletes the namespaces (their
veths go with them) and the bridge, and removes the run's folders; each step runs even when
another failed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deploy.hosts import (
    APP_PORT,
    APP_WS_PORT,
    DATABASE,
    POSTGRES_PORT,
    REDIS_SHARD_PORTS,
    app_command,
    app_environment,
    front_command,
)
from deploy.services import (
    PostgresServer,
    RedisServer,
    ServiceError,
    free_port,
    postgres_available,
    redis_available,
)

BASE_DIR = Path(__file__).resolve().parent.parent
RUNS_DIR = BASE_DIR / ".local" / "cluster"
SUBNET_PREFIX = "10.231"
# Serialises the choice of a subnet between runs on this machine (any checkout).
SUBNET_LOCK = Path(tempfile.gettempdir()) / "parley-cluster-subnet.lock"
START_TIMEOUT = 180.0


class ClusterError(RuntimeError):
    pass


def unavailable_reason() -> str | None:
    """Why this machine cannot run the cluster, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns)"
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip`)"
    if not postgres_available():
        return "needs the PostgreSQL server binaries (initdb, pg_ctl)"
    if not redis_available():
        return "needs redis-server"
    if nginx_binary() is None:
        return "needs nginx (make cluster-deps)"
    probe = f"pcprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None


# --- The run's record -------------------------------------------------------------------------


@dataclass
class Host:
    netns: str
    address: str
    log: str = ""
    pid: int | None = None  # the application host's supervisor

    @property
    def http(self) -> str:
        return f"http://{self.address}:{APP_PORT}"

    @property
    def ws(self) -> str:
        return f"ws://{self.address}:{APP_WS_PORT}"

    @property
    def veth(self) -> str:
        """The host's end of its link, in the root namespace (on the bridge)."""
        return f"v{self.netns.replace('-', '')}"[:15]


@dataclass
class Run:
    run_id: str
    octet: int
    directory: str
    hosts: int
    front_port: int
    owner_pid: int | None = None  # a test session's pid; None: `up` from the command line
    data: Host | None = None
    apps: list[Host] = field(default_factory=list)
    postgres_dir: str = ""
    redis_dirs: list[str] = field(default_factory=list)
    nginx_pid: int | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return f"pcb{self.run_id}"

    @property
    def subnet(self) -> str:
        return f"{SUBNET_PREFIX}.{self.octet}.0/24"

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge (the front, the tests, a receiver)."""
        return f"{SUBNET_PREFIX}.{self.octet}.1"

    @property
    def front(self) -> str:
        return f"http://127.0.0.1:{self.front_port}"

    @property
    def record(self) -> Path:
        return Path(self.directory) / "run.json"

    def save(self) -> None:
        self.record.write_text(json.dumps(asdict(self), indent=2))
        RUNS_DIR.mkdir(parents=True, exist_ok=True)
        (RUNS_DIR / f"{self.run_id}.json").write_text(json.dumps({"record": str(self.record)}))

    @classmethod
    def load(cls, path: Path) -> Run:
        raw = json.loads(path.read_text())
        data = raw.pop("data")
        apps = raw.pop("apps")
        run = cls(**raw)
        run.data = Host(**data) if data else None
        run.apps = [Host(**app) for app in apps]
        return run

    def postgres(self) -> PostgresServer:
        assert self.data is not None
        return PostgresServer(
            directory=Path(self.postgres_dir),
            port=POSTGRES_PORT,
            host=self.data.address,
            netns=self.data.netns,
            settings=POSTGRES_SETTINGS,
        )

    def redis(self, shard: int) -> RedisServer:
        assert self.data is not None
        return RedisServer(
            directory=Path(self.redis_dirs[shard]),
            port=REDIS_SHARD_PORTS[shard],
            host=self.data.address,
            netns=self.data.netns,
        )

    def database_url(self) -> str:
        assert self.data is not None
        return f"postgres://postgres@{self.data.address}:{POSTGRES_PORT}/{DATABASE}"


# The data host's PostgreSQL: room for every host's pools, and connections of a host that
# vanished (a partition: no FIN, no RST) found dead within seconds by keepalive probes, so the
# locks its requests held are released and another host can finish their work.
POSTGRES_SETTINGS = {
    "max_connections": "300",
    "tcp_keepalives_idle": "2",
    "tcp_keepalives_interval": "1",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "5000",
}


# --- Building and tearing down ----------------------------------------------------------------


def _ip(*args: str, netns: str | None = None, check: bool = True) -> None:
    command = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if check and done.returncode != 0:
        raise ClusterError(f"{' '.join(command)}: {done.stderr.strip()}")


def _taken_octets() -> set[int]:
    shown = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=False
    ).stdout
    taken = set()
    for word in shown.split():
        if word.startswith(f"{SUBNET_PREFIX}."):
            with contextlib.suppress(ValueError, IndexError):
                taken.add(int(word.split(".")[2]))
    return taken


@contextlib.contextmanager
def _subnet_lock() -> Iterator[None]:
    with SUBNET_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _network(run: Run) -> None:
    """The bridge with the root namespace's address, then a namespace per host on it."""
    with _subnet_lock():
        free = [n for n in range(256) if n not in _taken_octets()]
        if not free:
            raise ClusterError(f"no free /24 left in {SUBNET_PREFIX}.0.0/16")
        run.octet = free[0]
        _ip("link", "add", run.bridge, "type", "bridge")
        _ip("addr", "add", f"{run.gateway}/24", "dev", run.bridge)
        _ip("link", "set", run.bridge, "up")
    run.save()
    assert run.data is not None
    for number, host in enumerate([run.data, *run.apps]):
        host.address = f"{SUBNET_PREFIX}.{run.octet}.{2 if number == 0 else 10 + number}"
        _ip("netns", "add", host.netns)
        run.save()
        _ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        _ip("link", "set", host.veth, "master", run.bridge, "up")
        _ip("link", "set", "lo", "up", netns=host.netns)
        _ip("addr", "add", f"{host.address}/24", "dev", "eth0", netns=host.netns)
        _ip("link", "set", "eth0", "up", netns=host.netns)


def _data_host(run: Run) -> None:
    from deploy.services import _own_folder

    run.postgres_dir = str(_own_folder("parley-cluster-pg-", for_postgres=True))
    run.redis_dirs = [
        str(_own_folder("parley-cluster-redis-", for_postgres=False)) for _ in REDIS_SHARD_PORTS
    ]
    run.save()
    pg = run.postgres()
    pg.init()
    pg.trust_network(run.subnet)
    pg.start()
    pg.create_database(DATABASE)
    for shard in range(len(REDIS_SHARD_PORTS)):
        run.redis(shard).start()


def base_environment(run: Run, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """Every application host's environment: the same secrets (a token signed on one host is
    valid on all), the data host's services, the production profile's defaults."""
    assert run.data is not None
    inherited = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "CHANNEL_REDIS_URLS")
    }
    if not run.env:
        from cryptography.fernet import Fernet

        run.env = {
            "SECRET_KEY": secrets.token_urlsafe(48),
            "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
            "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
    allowed = ["localhost", "127.0.0.1", *(host.address for host in run.apps)]
    return {
        **inherited,
        **run.env,
        **app_environment(
            database_url=run.database_url(),
            redis_servers=[f"{run.data.address}:{port}" for port in REDIS_SHARD_PORTS],
            allowed_hosts=allowed,
        ),
    }


def start_app(run: Run, host: Host) -> None:
    """Start (or start again) one application host's production profile in its namespace."""
    log = Path(host.log)
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - ip netns exec + deploy/hosts.py's command
            ["ip", "netns", "exec", host.netns, *app_command(sys.executable)],
            cwd=BASE_DIR,
            env=base_environment(run),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group; survives the CLI's exit
        )
    host.pid = process.pid
    run.save()


def wait_app(run: Run, host: Host, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    for url in (f"{host.http}/health", f"http://{host.address}:{APP_WS_PORT}/health"):
        while not _answers(url):
            if host.pid is not None and not _alive(host.pid):
                raise ClusterError(f"{host.netns} exited:\n{_tail(Path(host.log))}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{url} not up after {timeout:.0f} s:\n{_tail(Path(host.log))}")
            time.sleep(0.3)


def _front(run: Run) -> None:
    from config.serving.serve import nginx_conf

    binary = nginx_binary()
    if binary is None:
        raise ClusterError("nginx is not installed: make cluster-deps")
    directory = Path(run.directory) / "nginx"
    directory.mkdir()
    directory.chmod(0o755)
    conf = directory / "nginx.conf"
    conf.write_text(
        nginx_conf(
            directory,
            host="127.0.0.1",
            port=run.front_port,
            http_upstreams=[f"{host.address}:{APP_PORT}" for host in run.apps],
            ws_upstreams=[f"{host.address}:{APP_WS_PORT}" for host in run.apps],
        )
    )
    process = subprocess.Popen(  # noqa: S603 - nginx with the configuration written above
        front_command(binary, conf=str(conf), prefix=str(directory)),
        stdout=subprocess.DEVNULL,
        stderr=(directory / "stderr.log").open("ab"),
        start_new_session=True,
    )
    run.nginx_pid = process.pid
    run.save()
    deadline = time.monotonic() + 30
    while not _answers(f"{run.front}/health"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise ClusterError(f"nginx did not start: {_tail(directory / 'error.log')}")
        time.sleep(0.2)


def up(
    *,
    hosts: int = 2,
    front_port: int | None = None,
    owner_pid: int | None = None,
    extra_env: dict[str, str] | None = None,
) -> Run:
    """Build and start a cluster; torn down again if any step fails."""
    reason = unavailable_reason()
    if reason is not None:
        raise ClusterError(f"cannot run the cluster here: {reason}")
    reap_abandoned()
    run_id = secrets.token_hex(3)
    directory = Path(tempfile.mkdtemp(prefix=f"parley-cluster-{run_id}-"))
    directory.chmod(0o755)
    run = Run(
        run_id=run_id,
        octet=-1,
        directory=str(directory),
        hosts=hosts,
        front_port=front_port or free_port(),
        owner_pid=owner_pid,
        data=Host(netns=f"pc{run_id}-data", address=""),
        apps=[
            Host(netns=f"pc{run_id}-app{n}", address="", log=str(directory / f"app{n}.log"))
            for n in range(1, hosts + 1)
        ],
    )
    run.save()
    try:
        _network(run)
        _data_host(run)
        base_environment(run, extra_env)
        for host in run.apps:
            start_app(run, host)
        for host in run.apps:
            wait_app(run, host)
        _front(run)
    except BaseException:
        down(run)
        raise
    return run


def down(run: Run, *, grace: float = 10.0) -> list[str]:
    """Tear everything of `run` down; every step is tried. Returns what failed, if anything."""
    problems: list[str] = []

    def attempt(what: str, step: object) -> None:
        try:
            step()  # type: ignore[operator]
        except Exception as exc:  # noqa: BLE001 - the other steps must still run
            problems.append(f"{what}: {exc}")

    if run.nginx_pid:
        attempt("nginx", lambda: _stop_pids([run.nginx_pid], signal.SIGQUIT, grace))  # type: ignore[list-item]
    namespaces = [host.netns for host in ([run.data] if run.data else []) + run.apps]
    for netns in namespaces:
        attempt(netns, lambda netns=netns: _stop_pids(_netns_pids(netns), signal.SIGTERM, grace))
    for netns in namespaces:
        attempt(f"delete {netns}", lambda netns=netns: _ip("netns", "del", netns, check=False))
    attempt("bridge", lambda: _ip("link", "del", run.bridge, check=False))
    for folder in [run.postgres_dir, *run.redis_dirs, run.directory]:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        (RUNS_DIR / f"{run.run_id}.json").unlink()
    return problems


def _netns_pids(netns: str) -> list[int]:
    listed = subprocess.run(
        ["ip", "netns", "pids", netns], capture_output=True, text=True, check=False
    ).stdout
    return [int(pid) for pid in listed.split()]


def _stop_pids(pids: list[int], first: int, grace: float) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, first)
    deadline = time.monotonic() + grace
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our exited child not yet reaped) is gone as far as serving goes
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our hosts
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def recorded_runs() -> list[Run]:
    runs = []
    for pointer in sorted(RUNS_DIR.glob("*.json")):
        try:
            record = Path(json.loads(pointer.read_text())["record"])
            runs.append(Run.load(record))
        except (OSError, ValueError, KeyError, TypeError):
            pointer.unlink(missing_ok=True)
    return runs


def abandoned(run: Run) -> bool:
    """A test session's run whose session is gone (killed before its clean-up ran)."""
    return run.owner_pid is not None and not _alive(run.owner_pid)


def reap_abandoned() -> None:
    """Tear down the runs of dead test sessions, so a killed session leaves nothing behind
    past the next run."""
    for run in recorded_runs():
        if abandoned(run):
            down(run, grace=2.0)


@contextlib.contextmanager
def cluster_running(*, hosts: int = 2, extra_env: dict[str, str] | None = None) -> Iterator[Run]:
    """A cluster for the block (a test module's): torn down afterwards, even on failure; if the
    session dies first, the next `down` finds it by its dead owner."""
    run = up(hosts=hosts, owner_pid=os.getpid(), extra_env=extra_env)
    try:
        yield run
    finally:
        down(run, grace=5.0)


# --- Command line -----------------------------------------------------------------------------


def _status(run: Run) -> str:
    lines = [f"run {run.run_id}: front {run.front} (nginx), subnet {run.subnet}"]
    if run.data is not None:
        pg = run.postgres()
        lines.append(
            f"  data  {run.data.netns:<18} {run.data.address}: PostgreSQL "
            f"{'up' if pg.pid() else 'DOWN'} :{POSTGRES_PORT}, Redis shards "
            + ", ".join(f":{port}" for port in REDIS_SHARD_PORTS)
        )
    for host in run.apps:
        state = "serving" if _answers(f"{host.http}/ready") else "NOT READY"
        lines.append(f"  app   {host.netns:<18} {host.http} {state}  (log {host.log})")
    lines.append(f"  DATABASE_URL={run.database_url()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status", "bench"])
    parser.add_argument("--hosts", type=int, default=2, help="application hosts (up, bench)")
    parser.add_argument("--port", type=int, default=8080, help="the front's port on 127.0.0.1")
    args = parser.parse_args(argv)
    if args.hosts < 1:
        parser.error("--hosts must be at least 1")
    if args.action == "up":
        try:
            run = up(hosts=args.hosts, front_port=args.port)
        except (ClusterError, ServiceError) as exc:
            print(f"cluster: {exc}", file=sys.stderr)
            return 1
        print(_status(run))
        print("Stop it with: make cluster-down")
        return 0
    if args.action == "down":
        failed = False
        for run in recorded_runs():
            if run.owner_pid is not None and not abandoned(run):
                continue  # a test session's cluster, still in use
            problems = down(run)
            print(f"run {run.run_id}: down" + (f" ({'; '.join(problems)})" if problems else ""))
            failed = failed or bool(problems)
        return 1 if failed else 0
    if args.action == "status":
        runs = recorded_runs()
        if not runs:
            print("no cluster running (make cluster)")
        for run in runs:
            print(_status(run))
        return 0
    from bench.cluster import main as bench_main

    return bench_main(["--hosts", str(args.hosts)])


if __name__ == "__main__":
    sys.exit(main())

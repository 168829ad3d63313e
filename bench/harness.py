"""Plumbing shared by bench/run.py and bench/topology.py: starting the production profile,
driving wrk, and accounting CPU time of the server processes (a figure that survives a noisy
machine better than req/s)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.serving import serve

BASE_DIR = serve.BASE_DIR
LUA = BASE_DIR / "bench" / "lua" / "parley.lua"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- processes --------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """pid and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children.get(current, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """user+system CPU of these processes (all their threads)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy, all cores (/proc/stat: everything but idle and
    iowait): the server, PostgreSQL, Redis, wrk and the kernel's share of every round trip."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle, iowait = fields[3], fields[4]
    return (sum(fields[:8]) - idle - iowait) / CLOCK_TICKS


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """user+system CPU seconds of each process still alive."""
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return found


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two snapshots by processes alive at both (a PostgreSQL backend that
    exited in between took its counters with it)."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def postgres_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == "postgres":
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


class Supervised:
    """A server process tree started and stopped by the benchmark (Parley's or the peer's)."""

    process: subprocess.Popen[bytes] | None

    def _launch(
        self, command: list[str], *, env: dict[str, str], cwd: Path, log_path: Path, ports: set[int]
    ) -> None:
        log = log_path.open("wb")
        self.process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            for port in ports:
                serve.wait_until_up(f"http://127.0.0.1:{port}/health", timeout=60)
        except BaseException:
            self.stop()
            raise

    @property
    def pids(self) -> list[int]:
        assert self.process is not None
        return descendants(self.process.pid)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait; a tree still up after `timeout` is killed, children first."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            for pid in reversed(self.pids):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return self.process.wait(5)


@dataclass
class Server(Supervised):
    """The production profile (config/serving/serve.py's plan) running under our control."""

    args: list[str]
    env: dict[str, str]
    http_port: int
    ws_port: int
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    # Another checkout of Parley to serve (e.g. a git worktree of main, as the baseline in an
    # A/B/C run); its code, this run's environment, database and keys.
    tree: Path = BASE_DIR

    def start(self, log_path: Path) -> None:
        self.log_path = log_path
        self._launch(
            [sys.executable, "-m", "config.serving", "--no-prepare", *self.args],
            env=self.env,
            cwd=self.tree,
            log_path=log_path,
            ports={self.http_port, self.ws_port},
        )

    def worker_pids(self, port: int) -> list[int]:
        """Processes listening on `port` (by the sockets in /proc/<pid>/fd)."""
        inodes = _listening_inodes(port)
        found = []
        for pid in self.pids:
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                        found.append(pid)
                        break
            except OSError:
                continue
        return found

    def asgi_pids(self) -> list[int]:
        """The uvicorn worker processes (config.serving.asgi_graceful)."""
        found = []
        for pid in self.pids:
            try:
                if serve.ASGI_MODULE.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(pid)
            except OSError:
                continue
        return found


@dataclass
class PeerServer(Supervised):
    """The peer (bench/peer): uvicorn with its worker processes, under our control."""

    env: dict[str, str]
    port: int
    workers: int = 2
    process: subprocess.Popen[bytes] | None = None

    def start(self, log_path: Path) -> None:
        self._launch(
            [
                sys.executable,
                "-m",
                "bench.peer",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            env=self.env,
            cwd=BASE_DIR,
            log_path=log_path,
            ports={self.port},
        )


def _listening_inodes(port: int) -> set[int]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            local, state, inode = parts[1], parts[3], int(parts[9])
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


# --- wrk ------------------------------------------------------------------------------------


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} not found: apt-get install -y {package}")
    return path


@dataclass
class WrkResult:
    rps: float
    requests: int
    errors: int
    statuses: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    # wrk's own report, kept out of as_dict() (results keep the figures, not the histogram).
    raw: dict[str, Any] = field(default_factory=dict)
    cpu_ms_per_request: float | None = None
    db_cpu_ms_per_request: float | None = None
    machine_cpu_ms_per_request: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "raw"}


def wrk(
    url: str,
    *,
    mode: str,
    connections: int,
    duration: float,
    threads: int = 2,
    data_file: Path | None = None,
    extra: str = "-",
    cpu_pids: list[int] | None = None,
    db_pids: list[int] | None = None,
    timeout_s: int = 10,
) -> WrkResult:
    """One wrk run with bench/lua/parley.lua; errors = socket errors + non-2xx/3xx + timeouts."""
    command = [
        require_tool("wrk", "wrk"),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(LUA),
        url,
        "--",
        mode,
        str(data_file or "-"),
        extra,
        str(threads),
    ]
    cpu_before = cpu_seconds(cpu_pids) if cpu_pids else 0.0
    db_before = cpu_by_pid(db_pids) if db_pids else {}
    machine_before = machine_busy_seconds()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    machine_after = machine_busy_seconds()
    cpu_after = cpu_seconds(cpu_pids) if cpu_pids else 0.0
    db_after = cpu_by_pid(db_pids) if db_pids else {}
    match = re.search(r"^WRKJSON (.*)$", completed.stdout, re.MULTILINE)
    if completed.returncode != 0 or match is None:
        raise RuntimeError(
            f"wrk failed ({completed.returncode}): {completed.stdout}{completed.stderr}"
        )
    raw = json.loads(match.group(1))
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw["errors"].values())
    lat = raw["latency_us"]
    requests = raw["requests"]
    return WrkResult(
        rps=requests / seconds if seconds else 0.0,
        requests=requests,
        errors=errors,
        statuses=raw["statuses"],
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        max_ms=lat["max"] / 1000,
        cpu_ms_per_request=(
            1000 * (cpu_after - cpu_before) / requests if cpu_pids and requests else None
        ),
        db_cpu_ms_per_request=(
            1000 * cpu_delta(db_before, db_after) / requests if db_pids and requests else None
        ),
        machine_cpu_ms_per_request=(
            1000 * (machine_after - machine_before) / requests if requests else None
        ),
        raw=raw,
    )


def median_run(results: list[WrkResult]) -> dict[str, Any]:
    """The median of each figure over the runs, plus every run."""

    def med(name: str) -> float:
        values = [getattr(r, name) for r in results if getattr(r, name) is not None]
        return round(statistics.median(values), 3) if values else None  # type: ignore[return-value]

    return {
        "runs": len(results),
        "rps": med("rps"),
        "p50_ms": med("p50_ms"),
        "p90_ms": med("p90_ms"),
        "p99_ms": med("p99_ms"),
        "cpu_ms_per_request": med("cpu_ms_per_request"),
        "db_cpu_ms_per_request": med("db_cpu_ms_per_request"),
        "machine_cpu_ms_per_request": med("machine_cpu_ms_per_request"),
        "errors_total": sum(r.errors for r in results),
        "requests_total": sum(r.requests for r in results),
        "each": [r.as_dict() for r in results],
    }


def write_customers_tsv(customers: list[dict[str, Any]], path: Path) -> Path:
    path.write_text(
        "".join(f"{c['token']}\t{c['id']}\t{c['conversation_id']}\n" for c in customers)
    )
    return path


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def settle(seconds: float) -> None:
    time.sleep(seconds)

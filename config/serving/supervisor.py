"""The process supervisor of `make serve` (config/serving/serve.py) and `make run`
(config/serving/run.py): starts the servers and the worker, and keeps them running.

- A child that exits on its own is started again, with backoff (0.5 s, doubling to 30 s while it
  keeps exiting soon after its start; back to 0.5 s once a run lasted STARTUP_GRACE), and the
  log says which, how and when. One process's trouble (a worker that met a bug, a server killed
  by the OOM killer) is never the deployment's outage.
- SIGTERM/SIGINT stop everything: each child gets its graceful stop signal and
  `kill_after` seconds before SIGKILL. Exit status: the worst child's (a child stopped by our own
  signal exited cleanly).
- A child that keeps failing at start-up -- MAX_STARTUP_FAILURES exits in a row, each within
  STARTUP_GRACE seconds of its start (a port taken, a bad setting, a database that never comes
  back before a migration) -- stops everything with a non-zero status, so the service manager
  above sees a failed unit instead of a restart loop.

Children share the supervisor's process group: Ctrl-C in a terminal reaches them all, and the
supervisor, which notices the signal first, does not start again a child that stops with it.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("parley.serve")

STARTUP_GRACE = 10.0
MAX_STARTUP_FAILURES = 5
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
POLL_SECONDS = 0.1


def child_name(command: list[str]) -> str:
    """A short name for the log: `run_worker`, `config.serving.asgi_graceful`, `granian`."""
    parts = [part for part in command if not part.startswith(("/usr/bin/env", "DB_"))]
    for marker in ("manage.py", "-m"):
        for index, part in enumerate(parts[:-1]):
            if part == marker or part.endswith(f"/{marker}"):
                return parts[index + 1]
    return Path(parts[0]).name if parts else "?"


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


@dataclass
class Child:
    command: list[str]
    stop_signal: int
    name: str
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    # Exits in a row, each within STARTUP_GRACE of its start.
    quick_exits: int = 0
    restart_at: float | None = None
    restarts: int = 0
    last_code: int = 0


class Supervisor:
    """Starts the server processes, restarts one that exits (with backoff), forwards
    SIGTERM/SIGINT, and gives up only on a child that keeps failing at start-up."""

    def __init__(
        self,
        commands: list[list[str]],
        env: dict[str, str],
        stop_signals: dict[int, int] | None = None,
        *,
        cwd: Path | None = None,
        startup_grace: float = STARTUP_GRACE,
        max_startup_failures: int = MAX_STARTUP_FAILURES,
        backoff_first: float = BACKOFF_FIRST,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        signals = stop_signals or {}
        self.children = [
            Child(command=command, stop_signal=signals.get(index, 0), name=child_name(command))
            for index, command in enumerate(commands)
        ]
        self.env = env
        self.cwd = cwd
        self.stopping = False
        self.stop_sent_at: float | None = None
        self.gave_up: Child | None = None
        self.startup_grace = startup_grace
        self.max_startup_failures = max_startup_failures
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max

    def start(self) -> None:
        for child in self.children:
            if self.stopping:
                return
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        # Commands built by our own plans from our own options, never from request data.
        child.process = subprocess.Popen(child.command, env=self.env, cwd=self.cwd)  # noqa: S603
        child.started_at = time.monotonic()
        child.restart_at = None
        if self.stopping:
            # SIGTERM arrived while this one was being started (its handler ran before the
            # process was recorded, so it was not told): tell it now.
            child.process.send_signal(child.stop_signal or signal.SIGTERM)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Ask every running child to stop (its own stop signal, else `sig`); start nothing."""
        if not self.stopping:
            self.stopping = True
            self.stop_sent_at = time.monotonic()
        for child in self.children:
            child.restart_at = None
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(child.stop_signal or sig)

    def poll(self) -> bool:
        """One round: restart what is due, notice what exited. False once everything stopped."""
        now = time.monotonic()
        if self.stopping:
            return any(c.process is not None and c.process.poll() is None for c in self.children)
        for child in self.children:
            if child.process is None:
                if child.restart_at is not None and now >= child.restart_at:
                    child.restarts += 1
                    logger.warning("starting %s again (restart %d)", child.name, child.restarts)
                    self._spawn(child)
                continue
            code = child.process.poll()
            if code is not None:
                self._exited(child, child.process.pid, code, now)
                if self.stopping:
                    return True
        return True

    def _exited(self, child: Child, pid: int, code: int, now: float) -> None:
        ran = now - child.started_at
        child.last_code = code
        child.process = None
        child.quick_exits = child.quick_exits + 1 if ran < self.startup_grace else 0
        if child.quick_exits >= self.max_startup_failures:
            logger.error(
                "%s (pid %d) exited with %s after %.1f s: %d exits in a row within %.0f s of "
                "starting, giving up and stopping everything",
                child.name,
                pid,
                describe_exit(code),
                ran,
                child.quick_exits,
                self.startup_grace,
            )
            self.gave_up = child
            self.stop()
            return
        delay = min(self.backoff_max, self.backoff_first * 2 ** max(0, child.quick_exits - 1))
        child.restart_at = now + delay
        logger.warning(
            "%s (pid %d) exited with %s after %.1f s; starting it again in %.1f s",
            child.name,
            pid,
            describe_exit(code),
            ran,
            delay,
        )

    def wait(self, kill_after: float) -> int:
        """Until every child has exited after a stop; SIGKILL stragglers `kill_after` seconds
        after the stop. Returns the exit status (see the module's docstring)."""
        while self.poll():
            if self.stopping and self.stop_sent_at is not None:
                if time.monotonic() - self.stop_sent_at > kill_after:
                    for child in self.children:
                        if child.process is not None and child.process.poll() is None:
                            logger.warning("%s did not stop in time: SIGKILL", child.name)
                            child.process.kill()
            time.sleep(POLL_SECONDS)
        return self.exit_status()

    def exit_status(self) -> int:
        if self.gave_up is not None:
            return abs(self.gave_up.last_code) or 1
        codes = [c.process.returncode for c in self.children if c.process is not None]
        # A child stopped by our own SIGTERM/SIGINT/SIGQUIT exited cleanly for our purposes.
        clean = (0, -signal.SIGTERM, -signal.SIGINT, -signal.SIGQUIT)
        return max((0 if code in clean else abs(code)) for code in codes) if codes else 0


def supervise(
    commands: list[list[str]],
    env: dict[str, str],
    *,
    stop_signals: dict[int, int] | None = None,
    cwd: Path | None = None,
    kill_after: float = 25.0,
) -> int:
    """Run `commands` under a Supervisor until SIGTERM/SIGINT (or a child that keeps failing
    at start-up); the exit status."""
    supervisor = Supervisor(commands, env, stop_signals, cwd=cwd)

    def on_signal(signum: int, _frame: object) -> None:
        logger.info("%s: graceful shutdown", signal.Signals(signum).name)
        supervisor.stop(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logger.info("supervisor pid %d", os.getpid())
    supervisor.start()
    return supervisor.wait(kill_after=kill_after)

"""config/serving/supervisor.py: a child that exits is started again (with backoff, logged), the
others keep running; SIGTERM stops everything; only a child that keeps failing at start-up
stops the deployment. Children here are tiny Python programs, timings shortened."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.serving import run
from config.serving.supervisor import Supervisor, child_name, describe_exit

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
BASE_DIR = Path(__file__).resolve().parents[2]


def _crasher(code: int) -> list[str]:
    return [sys.executable, "-c", f"import sys; sys.exit({code})"]


def _poll_until(supervisor: Supervisor, done: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert supervisor.poll(), "the supervisor stopped"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _stop(supervisor: Supervisor) -> int:
    supervisor.stop()
    return supervisor.wait(kill_after=10)


def test_a_child_that_exits_is_started_again_and_the_others_keep_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Runs 0.5 s and fails the first time (a worker meeting a bug), then stays up.
    marker = tmp_path / "ran-once"
    flaky = [
        sys.executable,
        "-c",
        f"import pathlib, sys, time\n"
        f"p = pathlib.Path({str(marker)!r})\n"
        f"if not p.exists():\n    p.touch(); time.sleep(0.5); sys.exit(1)\n"
        f"time.sleep(60)",
    ]
    supervisor = Supervisor([SLEEPER, flaky], dict(os.environ), startup_grace=0.3)
    with caplog.at_level(logging.INFO, logger="parley.serve"):
        supervisor.start()
        server, worker = supervisor.children
        server_pid, first_worker_pid = server.process.pid, worker.process.pid  # type: ignore[union-attr]
        _poll_until(supervisor, lambda: worker.restarts == 1 and worker.process is not None)
        assert worker.process.pid != first_worker_pid  # type: ignore[union-attr]
        assert server.process.pid == server_pid  # type: ignore[union-attr]
        assert server.process.poll() is None  # type: ignore[union-attr]
        status = _stop(supervisor)
    assert status == 0
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith(f"python (pid {first_worker_pid}) exited with status 1 after 0.")
    assert messages[0].endswith("s; starting it again in 0.5 s")
    assert messages[1] == "starting python again (restart 1)"
    assert len(messages) == 2


def test_backoff_doubles_while_a_child_keeps_exiting_soon_after_its_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor(
        [SLEEPER, _crasher(3)],
        dict(os.environ),
        startup_grace=30,
        max_startup_failures=4,
        backoff_first=0.05,
    )
    with caplog.at_level(logging.WARNING, logger="parley.serve"):
        supervisor.start()
        status = supervisor.wait(kill_after=10)
    server = supervisor.children[0]
    # Given up: the failing child's status, and the healthy one was stopped with it.
    assert status == 3
    assert server.process is not None
    assert server.process.returncode == -signal.SIGTERM
    delays = [
        r.getMessage().rsplit(" in ", 1)[1]
        for r in caplog.records
        if "starting it again" in r.getMessage()
    ]
    assert delays == ["0.1 s", "0.1 s", "0.2 s"]  # 0.05, 0.1, 0.2 (one decimal)
    assert "4 exits in a row within 30 s of starting, giving up and stopping everything" in (
        caplog.records[-1].getMessage()
    )


def test_a_long_run_resets_the_backoff() -> None:
    supervisor = Supervisor([SLEEPER], dict(os.environ), startup_grace=0.2, backoff_first=0.05)
    supervisor.start()
    (child,) = supervisor.children
    child.quick_exits = 3  # it had been failing...
    time.sleep(0.3)  # ...then ran longer than the grace
    child.process.kill()  # type: ignore[union-attr]
    child.process.wait()  # type: ignore[union-attr]
    supervisor.poll()
    assert child.quick_exits == 0
    assert child.restart_at is not None
    assert child.restart_at - time.monotonic() <= 0.05
    assert _stop(supervisor) == 0


def test_sigterm_stops_everything_and_exits_cleanly(tmp_path: Path) -> None:
    """The real entry point: `python -m config.serving.run`'s supervisor with two sleepers."""
    code = (
        "import logging, sys; from config.serving import supervisor as s; "
        "logging.basicConfig(level=logging.INFO); "
        f"sys.exit(s.supervise([{SLEEPER!r}, {SLEEPER!r}], dict(__import__('os').environ)))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while len(_children_of(process.pid)) < 2:
            assert time.monotonic() < deadline, "children did not start"
            time.sleep(0.05)
        children = _children_of(process.pid)
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        for pid in children:
            assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.stderr is not None
    assert "SIGTERM: graceful shutdown" in process.stderr.read()


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _is_zombie(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) == "Z"
    except OSError:
        return True


def test_children_are_named_for_the_log() -> None:
    assert child_name([sys.executable, "/srv/parley/manage.py", "run_worker"]) == "run_worker"
    assert child_name([sys.executable, "-m", "config.serving.asgi_graceful"]) == (
        "config.serving.asgi_graceful"
    )
    assert child_name(["/usr/bin/env", "DB_CONN_MAX_AGE=600", "/v/bin/granian", "--x"]) == "granian"
    assert describe_exit(3) == "status 3"
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL"


def test_make_run_supervises_the_server_and_the_worker() -> None:
    server, worker = run.commands(host="127.0.0.1", port=8123)
    assert server[server.index("--port") + 1] == "8123"
    assert "config.asgi:application" in server
    assert server[server.index("--ws-max-size") + 1] == "65536"
    assert worker[-2:] == [str(BASE_DIR / "manage.py"), "run_worker"]
    makefile = (BASE_DIR / "Makefile").read_text()
    assert "$(PYTHON) -m config.serving.run --host $(HOST) --port $(PORT)" in makefile

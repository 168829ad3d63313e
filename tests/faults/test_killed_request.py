"""The process serving a keyed send is SIGKILLed mid-request: its key is free for a retry
within seconds, on PostgreSQL, and the supervisor of `make run` has the server back.

An idempotency claim used to be a row committed before the work: a killed process left it
behind and the key answered 409 for five minutes. The claim is now held by the request's
transaction (messaging/idempotency.py): the killed process's connection ends, PostgreSQL rolls
its transaction back and the key is free.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.faults.agents import HOLD_MARKER
from tests.faults.deployment import KeyedSender, parley_on_own_services
from tests.realtime.servers import api

pytestmark = pytest.mark.slow


def test_a_killed_request_frees_its_key_within_seconds(tmp_path: Path) -> None:
    hold_flag = tmp_path / "hold"
    hold_flag.touch()
    agent = {
        "AGENT_BACKEND": "tests.faults.agents.HoldOnceAgent",
        "FAULT_HOLD_FLAG": str(hold_flag),
    }
    with parley_on_own_services("run", extra_env=agent) as (parley, _receiver):
        sender = KeyedSender(parley, "sender1")
        body = {
            "message": f"{HOLD_MARKER} my order never arrived",
            "customer_id": sender.customer_id,
            "conversation_id": None,
        }
        headers = {"Idempotency-Key": "killed-mid-write"}
        first: list[Any] = []

        def send() -> tuple[Any, Any]:
            try:
                return api(
                    parley.http, "POST", "/api/v1/messages/process", body, sender.token, headers
                )
            except OSError as exc:  # the server died under it: no answer at all
                return type(exc).__name__, None

        held = threading.Thread(target=lambda: first.append(send()), daemon=True)
        held.start()
        deadline = time.monotonic() + 30
        while not Path(f"{hold_flag}.holding").exists():
            assert time.monotonic() < deadline, parley.log_tail()
            time.sleep(0.05)

        # Truly in flight: the same key is refused, and nothing is written.
        assert send()[0] == 409
        (server_pid,) = [
            pid for pid, command in parley.processes().items() if "config.asgi" in command
        ]
        os.kill(server_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        held.join(30)
        assert len(first) == 1
        assert first[0][0] != 200  # the client got no answer

        # The retry -- same key, same body -- goes through as soon as a server answers.
        statuses: list[Any] = []
        while True:
            status, answer = send()
            statuses.append(status)
            if status == 200:
                break
            assert time.monotonic() - killed_at < 20, (statuses, parley.log_tail())
            time.sleep(0.2)
        assert time.monotonic() - killed_at < 10, statuses
        assert 409 not in statuses  # the dead request's claim died with it
        assert answer["conversation_id"] > 0
        with parley.connect() as db:
            count = db.execute(
                "SELECT count(*) FROM messaging_message WHERE content = %s", [body["message"]]
            ).fetchone()
        assert count == (1,)

        # make run's supervisor started the server again (and only it); the worker never left.
        log = parley.log_text()
        assert "exited with signal SIGKILL" in log
        assert "starting uvicorn again (restart 1)" in log
        assert sum("run_worker" in command for command in parley.processes().values()) == 1

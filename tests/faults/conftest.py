"""Fault tests start their own PostgreSQL and Redis (deploy/services.py) and restart or
kill them, so they never touch the machine's. They need no DATABASE_URL of their own; CI runs
them once, in its PostgreSQL + Redis pass (where the machine has the servers installed), not in
both passes. FAULT_TESTS=1 runs them in any pass, FAULT_TESTS=0 in none."""

from __future__ import annotations

import os
import shutil

import pytest

from deploy.services import postgres_available, redis_available
from tests.faults.deployment import postgres_pass_reason


def _reason_to_skip() -> str | None:
    reason = postgres_pass_reason("FAULT_TESTS", "fault tests")
    if reason is not None:
        return reason
    if not postgres_available():
        return "needs the PostgreSQL server binaries (initdb, pg_ctl)"
    if not redis_available():
        return "needs redis-server"
    if shutil.which("make") is None:
        return "needs make (the tests start `make serve` and `make run`)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _reason_to_skip()
    if reason is None:
        return
    for item in items:
        if "tests/faults/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.skip(reason=reason))

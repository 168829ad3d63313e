"""Calls released at the same instant in threads, for the tests that race writers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connection


def race(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Runs each call in its own thread, all released together by a barrier: each one's
    result, or the exception it raised, in the order given. Each thread closes its own database
    connection (run under `django_db(transaction=True)` to see each other's commits)."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        try:
            barrier.wait(timeout=30)
            return call()
        except BaseException as exc:  # noqa: BLE001 - returned for the test to assert on
            return exc
        finally:
            connection.close()

    # As many threads as calls: every call must be waiting at the barrier before any runs.
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def failures(results: Sequence[Any]) -> list[BaseException]:
    """The exceptions among `race`'s results."""
    return [result for result in results if isinstance(result, BaseException)]

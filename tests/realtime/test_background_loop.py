"""The per-process background event loop used by sync code (messaging.realtime)."""

from __future__ import annotations


def test_background_work_keeps_the_callers_request_id() -> None:
    from core.request_context import current_request_id, request_id_var
    from messaging.realtime import run_in_background

    async def read_request_id() -> str | None:
        return current_request_id()

    token = request_id_var.set("req-background-01")
    try:
        assert run_in_background(read_request_id(), timeout=5) == "req-background-01"
    finally:
        request_id_var.reset(token)
    assert run_in_background(read_request_id(), timeout=5) is None

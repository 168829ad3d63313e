"""Liveness and readiness checks, shared by the root probes (/health, /ready) and the API.

The checks themselves are core.outages' (the outage watcher runs the same ones): a failed
check starts an outage in this process's log (once, not once per probe), a passing one ends
it."""

from __future__ import annotations

from core.outages import CHECKS, CheckFailed, outage_recovered, outage_report


def readiness() -> tuple[dict[str, str], list[str]]:
    """Run every check; ({name: "ok" | "unavailable"}, what failed in words a probe may show).
    Failures go to the log as outages; only a `CheckFailed`'s own description (an address
    without credentials, e.g. a lost channel layer shard) reaches the response, so a probe
    never leaks connection strings or driver messages."""
    results: dict[str, str] = {}
    details: list[str] = []
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            outage_report(name, exc)
            results[name] = "unavailable"
            if isinstance(exc, CheckFailed):
                details.append(str(exc))
        else:
            outage_recovered(name)
            results[name] = "ok"
    return results, details

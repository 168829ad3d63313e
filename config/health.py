"""Liveness and readiness checks, shared by the root probes (/health, /ready) and the API.

The checks themselves are core.outages' (the outage watcher runs the same ones): a failed
check starts an outage in this process's log (once, not once per probe), a passing one ends
it."""

from __future__ import annotations

from core.outages import CHECKS, outage_recovered, outage_report


def readiness() -> dict[str, str]:
    """Run every check; {name: "ok" | "unavailable"}. Failures go to the log as outages, never
    to the response, so a probe never leaks connection strings or driver messages."""
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            outage_report(name, exc)
            results[name] = "unavailable"
        else:
            outage_recovered(name)
            results[name] = "ok"
    return results

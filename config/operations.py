"""`GET /health` and `GET /ready`, public (docs/api.md), in the API and at the root for
probes."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from ninja import Router, Schema, Status

from config.health import readiness

router = Router(tags=["operations"])


class HealthOut(Schema):
    status: str


class ReadyOut(Schema):
    status: str
    checks: dict[str, str]


class ReadyFailedOut(Schema):
    detail: str
    checks: dict[str, str]


def health_payload() -> dict[str, str]:
    return {"status": "ok"}


def ready_payload() -> tuple[int, dict[str, object]]:
    checks, details = readiness()
    failed = [name for name, state in checks.items() if state != "ok"]
    if failed:
        detail = f"Not ready: {', '.join(failed)} unavailable"
        if details:
            detail += f" ({'; '.join(details)})"
        return 503, {"detail": detail, "checks": checks}
    return 200, {"status": "ready", "checks": checks}


@router.get("/health", auth=None, response=HealthOut, summary="Liveness (no database access)")
def health(request: HttpRequest) -> dict[str, str]:
    return health_payload()


@router.get(
    "/ready",
    auth=None,
    response={200: ReadyOut, 503: ReadyFailedOut},
    summary="Readiness: database, cache and channel layer answer",
)
def ready(request: HttpRequest) -> Status[dict[str, object]]:
    return Status(*ready_payload())


# Root-level probes: plain Django views, no API machinery, for load balancers.
def health_probe(request: HttpRequest) -> JsonResponse:
    return JsonResponse(health_payload())


def ready_probe(request: HttpRequest) -> JsonResponse:
    status, payload = ready_payload()
    return JsonResponse(payload, status=status)

"""The one NinjaAPI: authentication on by default, the error shapes of docs/api.md, every app's
router."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

from django.core.exceptions import (
    BadRequest,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError
from ninja.operation import Operation

from accounts.auth import Undeclared, policy_of
from accounts.models import SecurityEvent
from accounts.security import security_event_record
from config.middleware import unavailable_body
from core.errors import ParleyError, UnprocessableRequest
from core.outages import (
    DATABASE,
    RETRY_AFTER_SECONDS,
    dependency_of,
    outage_errors,
    outage_report,
)
from core.parsing import TOO_MANY_FIELDS, ParleyParser
from core.request_context import current_request_id

logger = logging.getLogger("parley.api")


class ParleyNinjaAPI(NinjaAPI):
    def iter_operations(self) -> Iterator[tuple[str, Operation]]:
        """Every operation as served, with the auth its router binding gave it."""
        for bound_router in self._get_bound_routers():
            for path, path_view in bound_router.path_operations.items():
                full_path = re.sub(r"/+", "/", f"/{bound_router.prefix}/{path}").rstrip("/")
                for operation in path_view.operations:
                    yield full_path or "/", operation

    def get_openapi_schema(self, **kwargs: Any) -> Any:
        """Ninja leaves per-operation OAuth scopes empty; fill them from each route's policy so
        clients (and schemathesis) see what every operation needs."""
        schema = super().get_openapi_schema(**kwargs)
        policies = {
            self.get_openapi_operation_id(operation): policy_of(operation.auth_callbacks)
            for _path, operation in self.iter_operations()
        }
        for methods in schema.get("paths", {}).values():
            for operation in methods.values():
                policy = policies.get(operation.get("operationId"))
                if policy is None or "security" not in operation:
                    continue
                for requirement in operation["security"]:
                    if "BearerAuth" in requirement:
                        requirement["BearerAuth"] = list(policy.scopes)
        return schema


api = ParleyNinjaAPI(
    title="Parley API",
    version="1.0.0",
    description=(
        "Customer-support conversations with an automated agent and human operators. "
        "Authenticate with `Authorization: Bearer <access token>` (POST /auth/token) or "
        "`X-API-Key`."
    ),
    urls_namespace="api",
    auth=Undeclared(),
    docs_url="/docs",
    openapi_url="/openapi.json",
    parser=ParleyParser(),
)


def _error(
    request: HttpRequest, status: int, detail: Any, headers: dict[str, str] | None = None
) -> HttpResponse:
    response = api.create_response(request, {"detail": detail}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@api.exception_handler(ParleyError)
def _parley_error(request: HttpRequest, exc: ParleyError) -> HttpResponse:
    detail: Any = exc.errors() if isinstance(exc, UnprocessableRequest) else exc.detail
    response = api.create_response(
        request, {"detail": detail, **exc.body_extra()}, status=exc.status_code
    )
    for name, value in exc.headers().items():
        response[name] = value
    return response


@api.exception_handler(AuthenticationError)
def _no_credentials(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    # Ninja raises this when no auth callback accepted the request: no usable credentials were
    # sent at all (refused credentials raise NotAuthenticated in accounts.auth).
    security_event_record(
        kind=SecurityEvent.Kind.AUTH_FAILED, request=request, detail={"reason": "no credentials"}
    )
    return _error(
        request,
        401,
        "Authentication credentials were not provided",
        {"WWW-Authenticate": "Bearer"},
    )


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return _error(request, exc.status_code, str(exc))


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    return _error(request, 422, exc.errors)


def _fixed_error(status: int, detail: str) -> Callable[[HttpRequest, Exception], HttpResponse]:
    def handler(request: HttpRequest, exc: Exception) -> HttpResponse:
        return _error(request, status, detail)

    return handler


# Errors that always answer the same status and words. UnicodeDecodeError: a body or query
# that is not UTF-8; MultiPartParserError: a broken multipart body (both read lazily, like the
# SuspiciousOperation family below).
for _exc_class, _status, _detail in (
    (AuthorizationError, 403, "You do not have permission to perform this action"),
    (Http404, 404, "Not found"),
    (RequestDataTooBig, 413, "Request body too large"),
    (MultiPartParserError, 400, "Malformed multipart body"),
    (UnicodeDecodeError, 400, "The request is not valid UTF-8"),
):
    api.exception_handler(_exc_class)(_fixed_error(_status, _detail))


# Django raises these lazily, when request.GET/POST/FILES is first read (too many fields or
# files, a form body that is not UTF-8, a broken multipart body): the client's mistake, so a
# 400, never the catch-all 500. RequestDataTooBig, a SuspiciousOperation too, keeps its 413.
@api.exception_handler(SuspiciousOperation)
@api.exception_handler(BadRequest)
def _bad_request(request: HttpRequest, exc: Exception) -> HttpResponse:
    # Our own words: Django's messages name settings, which responses never do (SPEC §3).
    if isinstance(exc, TooManyFieldsSent):
        detail = TOO_MANY_FIELDS
    elif isinstance(exc, TooManyFilesSent):
        detail = "Too many files"
    elif isinstance(exc, BadRequest) and "UTF-8" in str(exc):
        detail = "Form bodies must be UTF-8 encoded"
    else:
        detail = "Malformed request"
    return _error(request, 400, detail)


# PostgreSQL or Redis unreachable, the connection pool exhausted, a deadlock or lock wait
# broken off: neither the client's mistake nor a bug in the request, and the same request may
# well succeed shortly. 503 with Retry-After; the transaction was rolled back, so nothing was
# half-written. The outage goes to the log once (core.outages), not once per request; the
# request id of each refused request only at DEBUG. Never the cause to the client.
def _unavailable(request: HttpRequest, exc: Exception) -> HttpResponse:
    outage_report(dependency_of(exc) or DATABASE, exc)
    logger.debug(
        "dependency unavailable on %s %s: %s", request.method, request.path, type(exc).__name__
    )
    response = api.create_response(request, unavailable_body(), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


# Every error core.outages counts as an outage (the database's, django-redis's, Redis's own).
for _outage in outage_errors():
    api.exception_handler(_outage)(_unavailable)


@api.exception_handler(Exception)
def _unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    # The traceback goes to the log, tied to the request id; the client gets only the id.
    logger.exception("unhandled error on %s %s", request.method, request.path)
    return api.create_response(
        request,
        {"detail": "Internal server error", "request_id": current_request_id()},
        status=500,
    )


def _register_routers() -> None:
    from accounts.api import api_keys_router, auth_router
    from config.operations import router as operations_router
    from escalations.api import escalations_router, operators_router, statistics_router
    from escalations.inbox_api import notes_router, ratings_router
    from integrations.api import (
        customer_erasure_router,
        security_events_router,
        webhooks_router,
    )
    from messaging.api import conversations_router, customers_router, messages_router
    from messaging.search_api import search_router

    api.add_router("/auth", auth_router)
    api.add_router("/api-keys", api_keys_router)
    api.add_router("/messages", messages_router)
    api.add_router("/conversations", conversations_router)
    api.add_router("/customers", customers_router)
    api.add_router("/escalations", escalations_router)
    api.add_router("/statistics", statistics_router)
    api.add_router("/operators", operators_router)
    api.add_router("/search", search_router)
    api.add_router("/webhooks", webhooks_router)
    api.add_router("/security-events", security_events_router)
    api.add_router("/customers", customer_erasure_router)
    # Second routers on existing prefixes (inbox: notes, ratings); their paths are distinct.
    api.add_router("/escalations", notes_router)
    api.add_router("/conversations", ratings_router)
    api.add_router("", operations_router)


_register_routers()

"""Parley's own middleware. The request-id and body-size classes work natively under WSGI and
ASGI (no thread hand-off per request under ASGI, which the Django-provided MiddlewareMixin
classes cost: two sync/async hand-offs each, measured at -45 % throughput for Django's default
stack); the others adapt Django's and django-csp's."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from csp.constants import HEADER as CSP_HEADER
from csp.constants import HEADER_REPORT_ONLY as CSP_HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject, CSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase, JsonResponse

from core.outages import RETRY_AFTER_SECONDS, dependency_of, outage_report
from core.parsing import TOO_MANY_FIELDS, query_field_count_exceeded
from core.request_context import current_request_id, request_id_from_header, request_id_var

GetResponse = Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]


class _SyncAndAsyncMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        if self.is_async:
            return self._acall(request)
        return self._call(request)

    def _call(self, request: HttpRequest) -> HttpResponseBase:
        raise NotImplementedError

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        raise NotImplementedError


def unavailable_body() -> dict[str, str | None]:
    """What a request gets while the database or Redis is unavailable (with a 503)."""
    return {"detail": "Service temporarily unavailable", "request_id": current_request_id()}


def unavailable_response(exc: BaseException) -> JsonResponse | None:
    """503 with Retry-After when `exc` is an outage of a dependency (core.outages), which is
    then reported; None for any other exception."""
    dependency = dependency_of(exc)
    if dependency is None:
        return None
    outage_report(dependency, exc)
    response = JsonResponse(unavailable_body(), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class RequestIdMiddleware(_SyncAndAsyncMiddleware):
    """Gives every request an id (a well-formed incoming X-Request-ID is kept) and echoes it.

    Also the outage boundary of the pages outside the API (the admin above all): a view that
    meets an unavailable database or Redis answers 503 with Retry-After, not 500, in DEBUG too
    (the API has its own handler, config/api.py; config/urls.handler500 catches what fails
    in other middleware)."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> JsonResponse | None:
        return unavailable_response(exception)

    def _begin(self, request: HttpRequest) -> tuple[str, object]:
        request_id = request_id_from_header(request.META.get("HTTP_X_REQUEST_ID"))
        request.request_id = request_id  # type: ignore[attr-defined]
        return request_id, request_id_var.set(request_id)

    def _call(self, request: HttpRequest) -> HttpResponseBase:
        request_id, token = self._begin(request)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)  # type: ignore[arg-type]
        response["X-Request-ID"] = request_id  # type: ignore[index]
        return response  # type: ignore[return-value]

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        request_id, token = self._begin(request)
        try:
            response = await self.get_response(request)  # type: ignore[misc]
        finally:
            request_id_var.reset(token)  # type: ignore[arg-type]
        response["X-Request-ID"] = request_id
        return response


class ApiBodySizeLimitMiddleware(_SyncAndAsyncMiddleware):
    """Limits every API request meets before its route runs: 413 for a declared body over
    API_MAX_BODY_BYTES, before anything reads it (bodies without a Content-Length are capped by
    DATA_UPLOAD_MAX_MEMORY_SIZE when read), and 400 for a query string of more than
    core.parsing.MAX_FIELDS fields — on routes that read no query too, which would otherwise
    ignore the flood (the rule is core.parsing's, applied here so no route can skip it)."""

    def _too_large(self, request: HttpRequest) -> JsonResponse | None:
        if not request.path.startswith("/api/"):
            return None
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Invalid Content-Length header"}, status=400)
        if length > settings.API_MAX_BODY_BYTES:
            return JsonResponse(
                {"detail": f"Request body over {settings.API_MAX_BODY_BYTES} bytes"}, status=413
            )
        if query_field_count_exceeded(request):
            return JsonResponse({"detail": TOO_MANY_FIELDS}, status=400)
        return None

    def _call(self, request: HttpRequest) -> HttpResponseBase:
        return self._too_large(request) or self.get_response(request)  # type: ignore[return-value]

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        return self._too_large(request) or await self.get_response(request)  # type: ignore[misc]


# --- Browser-only middleware ------------------------------------------------------------------
# The admin's session, `request.user` and flash messages serve browsers only. The API
# authenticates every request with a bearer token or an API key, never a cookie
# (`accounts.auth.principal_of`). Setting up a session, a lazy user and message storage for a
# request that can use none of them is work on every API call (docs/benchmarks.md), so these
# subclasses pass /api/ requests straight on. Subclasses, not a wrapper around them: the admin's
# system checks look for these classes in MIDDLEWARE. Django's CsrfViewMiddleware stays as it
# is (its deploy check wants that exact class; ninja's operations are CSRF-exempt anyway).


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


class _SkippedForApi:
    get_response: GetResponse

    def __call__(self, request: HttpRequest):  # type: ignore[no-untyped-def]
        if _is_api(request):
            # Sync or async alike: under ASGI get_response returns the awaitable to await.
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]


class BrowserSessionMiddleware(_SkippedForApi, SessionMiddleware):
    pass


class BrowserAuthenticationMiddleware(_SkippedForApi, AuthenticationMiddleware):
    pass


class BrowserMessageMiddleware(_SkippedForApi, MessageMiddleware):
    pass


@functools.cache
def _settings_policies() -> tuple[str, str]:
    """The settings' policy and report-only policy, as django-csp's own build_policy writes
    them ("" when not configured)."""
    return build_policy(), build_policy(report_only=True)


@receiver(setting_changed)
def _settings_policies_forget(*, setting: str, **kwargs: object) -> None:
    if setting in {"CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY"}:
        _settings_policies.cache_clear()


# What makes a response's policy its own: django-csp's decorators set these on it.
_RESPONSE_POLICY_ATTRIBUTES = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_exempt",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
    "_csp_exempt_ro",
)


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware with the settings' policy built once per process.

    django-csp builds the header anew for every response (its directives copied and joined
    again, for the policy and for the report-only policy): 7 % of the message route's
    instructions, measured with callgrind. A response that only takes the settings' policy --
    no nonce asked for, no decorator's policy of its own, no header set by the view, no
    excluded path prefix configured -- gets that policy, built once by django-csp's own
    `build_policy`; any other goes through django-csp unchanged. A test compares the two on
    every kind of response."""

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if not self._settings_policy_applies(request, response):
            return super().process_response(request, response)
        if response.status_code in (HTTPStatus.NOT_FOUND, HTTPStatus.INTERNAL_SERVER_ERROR) and (
            settings.DEBUG
        ):
            return response  # Django's debug pages, as django-csp leaves them
        policy, report_only = _settings_policies()
        if policy:
            response[CSP_HEADER] = policy
        if report_only:
            response[CSP_HEADER_REPORT_ONLY] = report_only
        # As django-csp: a nonce asked for after the header is written is an error.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)  # type: ignore[attr-defined]
        return response

    @staticmethod
    def _settings_policy_applies(request: HttpRequest, response: HttpResponseBase) -> bool:
        if getattr(request, "_csp_nonce", None) is not None:
            return False
        if CSP_HEADER in response or CSP_HEADER_REPORT_ONLY in response:
            return False
        if any(hasattr(response, name) for name in _RESPONSE_POLICY_ATTRIBUTES):
            return False
        return not any(
            (getattr(settings, name, None) or {}).get("EXCLUDE_URL_PREFIXES")
            for name in ("CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY")
        )

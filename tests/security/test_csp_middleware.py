"""config.middleware.ContentSecurityPolicyMiddleware builds the settings' policy once; every
response must still get exactly the headers django-csp's own middleware gives it (the live
library, not a copy), on every kind of response."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from csp.exceptions import CSPNonceError
from csp.middleware import CSPMiddleware
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import RequestFactory

from config.middleware import ContentSecurityPolicyMiddleware, _settings_policies

HEADERS = ("Content-Security-Policy", "Content-Security-Policy-Report-Only")
REPORT_ONLY = {"DIRECTIVES": {"default-src": ["'none'"], "report-uri": "/csp-reports"}}


def _json() -> HttpResponse:
    return JsonResponse({"ok": True})


def _page() -> HttpResponse:
    return HttpResponse("<p>page</p>")


def _status(code: int) -> Callable[[], HttpResponse]:
    return lambda: HttpResponse("x", status=code)


def _with(**attributes: Any) -> Callable[[], HttpResponse]:
    def make() -> HttpResponse:
        response = HttpResponse("<p>decorated</p>")
        for name, value in attributes.items():
            setattr(response, name, value)
        return response

    return make


def _view_set_header() -> HttpResponse:
    response = HttpResponse("<p>own</p>")
    response["Content-Security-Policy"] = "default-src 'none'"
    return response


CASES: list[tuple[str, str, Callable[[], HttpResponse], dict[str, Any]]] = [
    ("api json", "/api/v1/messages/process", _json, {}),
    ("html page", "/", _page, {}),
    ("404", "/nowhere", _status(404), {}),
    ("404 with DEBUG", "/nowhere", _status(404), {"DEBUG": True}),
    ("500 with DEBUG", "/", _status(500), {"DEBUG": True}),
    ("report-only configured", "/", _page, {"CONTENT_SECURITY_POLICY_REPORT_ONLY": REPORT_ONLY}),
    ("no policy configured", "/", _page, {"CONTENT_SECURITY_POLICY": None}),
    ("decorator update", "/", _with(_csp_update={"img-src": ["https://cdn.example"]}), {}),
    ("decorator replace", "/", _with(_csp_replace={"script-src": ["'none'"]}), {}),
    ("decorator exempt", "/", _with(_csp_exempt=True), {}),
    ("header set by the view", "/", _view_set_header, {}),
    (
        "excluded prefix",
        "/api/v1/docs",
        _page,
        {
            "CONTENT_SECURITY_POLICY": {
                "EXCLUDE_URL_PREFIXES": ["/api/"],
                "DIRECTIVES": {"default-src": ["'self'"]},
            }
        },
    ),
]


def _run(
    middleware_class: type[CSPMiddleware],
    path: str,
    make: Callable[[], HttpResponse],
    *,
    nonce: bool = False,
) -> tuple[dict[str, str | None], HttpRequest]:
    request = RequestFactory().get(path)
    middleware = middleware_class(lambda _request: make())
    middleware.process_request(request)
    if nonce:
        str(request.csp_nonce)  # a template asking for the nonce
    response = middleware.process_response(request, make())
    headers = {name: response.headers.get(name) for name in HEADERS}
    # The nonce differs between requests; where it goes must not.
    stored = getattr(request, "_csp_nonce", None)
    if isinstance(stored, str):
        headers = {k: v and v.replace(stored, "NONCE") for k, v in headers.items()}
    return headers, request


@pytest.mark.parametrize(("name", "path", "make", "overrides"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("nonce", [False, True], ids=["no nonce", "nonce asked"])
def test_headers_are_django_csps_on_every_kind_of_response(
    settings, name, path, make, overrides, nonce
):
    for setting, value in overrides.items():
        setattr(settings, setting, value)
    ours, our_request = _run(ContentSecurityPolicyMiddleware, path, make, nonce=nonce)
    theirs, their_request = _run(CSPMiddleware, path, make, nonce=nonce)
    assert ours == theirs
    # Asking for a nonce afterwards: an error on both, or (Django's debug pages) on neither.
    assert _nonce_refused(our_request) == _nonce_refused(their_request)


def _nonce_refused(request: HttpRequest) -> bool:
    try:
        str(request.csp_nonce)
    except CSPNonceError:
        return True
    return False


def test_plain_responses_take_the_policy_built_once(settings):
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'self'"]}}
    _settings_policies.cache_clear()
    for _ in range(3):
        headers, _request = _run(ContentSecurityPolicyMiddleware, "/api/v1/x", _json)
        assert headers["Content-Security-Policy"] == "default-src 'self'"
    assert _settings_policies.cache_info().misses == 1


def test_a_changed_setting_changes_the_header(settings):
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'self'"]}}
    first, _ = _run(ContentSecurityPolicyMiddleware, "/", _page)
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    second, _ = _run(ContentSecurityPolicyMiddleware, "/", _page)
    assert first["Content-Security-Policy"] == "default-src 'self'"
    assert second["Content-Security-Policy"] == "default-src 'none'"

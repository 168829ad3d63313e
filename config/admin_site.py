"""Parley's admin site: Django's admin with a rate-limited, audited login and the operators'
statistics page."""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from accounts.admin_mfa import (
    SecondFactorLoginView,
    enrolment_view,
    login_code_view,
    second_factor_redirect,
)
from accounts.models import SecurityEvent
from accounts.ratelimits import login_rate_limit_enforce
from accounts.security import security_event_record
from accounts.usernames import canonical_username_or_none
from core.errors import RateLimited


class ParleyAdminSite(admin.AdminSite):
    site_header = "Parley operations"
    site_title = "Parley admin"
    index_title = "Operations"
    index_template = "admin/parley_index.html"

    @method_decorator(never_cache)
    def login(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method != "POST":
            return self._password_login(request, extra_context)
        raw_username = request.POST.get("username") or ""
        # The canonical form, as the API's sign-in computes it: one budget per account.
        username = canonical_username_or_none(raw_username) or raw_username[:150]
        try:
            login_rate_limit_enforce(request=request, username=username)
        except RateLimited as exc:
            context = {
                **self.each_context(request),
                "title": "Log in",
                "rate_limited": True,
                "retry_after": exc.retry_after,
            }
            response = TemplateResponse(
                request, "admin/login_rate_limited.html", context, status=429
            )
            response["Retry-After"] = str(exc.retry_after)
            return response
        login_response = self._password_login(request, extra_context)
        if login_response.status_code != 302:  # Django re-renders the form when sign-in fails
            security_event_record(
                kind=SecurityEvent.Kind.LOGIN_FAILED,
                request=request,
                detail={"username": username, "via": "admin"},
            )
        return login_response

    def _password_login(
        self, request: HttpRequest, extra_context: dict[str, Any] | None
    ) -> HttpResponse:
        """Django's AdminSite.login with the password step of accounts.admin_mfa: a right
        password for an account with a second factor leads to the code page, not in."""
        if request.method == "GET" and self.has_permission(request):
            return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
        context = {
            **self.each_context(request),
            "title": "Log in",
            "subtitle": None,
            "app_path": request.get_full_path(),
            "username": request.user.get_username(),
        }
        if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
            context[REDIRECT_FIELD_NAME] = reverse("admin:index", current_app=self.name)
        context.update(extra_context or {})
        request.current_app = self.name  # type: ignore[attr-defined]
        view = SecondFactorLoginView.as_view(
            extra_context=context,
            authentication_form=self.login_form or AdminAuthenticationForm,
            template_name=self.login_template or "admin/login.html",
        )
        return view(request)  # type: ignore[return-value]

    @method_decorator(never_cache)
    @method_decorator(csrf_protect)
    @method_decorator(sensitive_post_parameters("code"))
    @method_decorator(login_not_required)
    def login_code(self, request: HttpRequest) -> HttpResponse:
        """The code after the password (accounts.admin_mfa)."""
        context = {**self.each_context(request), "app_path": request.get_full_path()}
        return login_code_view(request, context)

    def second_factor(self, request: HttpRequest) -> HttpResponse:
        """Enrolment and status of the signed-in user's second factor."""
        return enrolment_view(request, self.each_context(request))

    def admin_view(self, view: Callable[..., Any], cacheable: bool = False) -> Any:
        """Every admin page, after Django's own checks: under STAFF_MFA_REQUIRED=1 staff
        without a factor reach the enrolment page first, and a session not proven with the
        account's factor is signed out (accounts.admin_mfa.second_factor_redirect). The
        enrolment page and logout pass."""
        checked = super().admin_view(view, cacheable)

        def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if request.resolver_match is None or request.resolver_match.url_name not in (
                "mfa",
                "logout",
            ):
                target = second_factor_redirect(request)
                if target is not None:
                    return HttpResponseRedirect(target)
            return checked(request, *args, **kwargs)

        return update_wrapper(inner, checked)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        from escalations.admin_views import statistics_view

        custom: list[URLResolver | URLPattern] = [
            path("statistics/", self.admin_view(statistics_view), name="statistics"),
            path("login/code/", self.login_code, name="login_code"),
            path("mfa/", self.admin_view(self.second_factor), name="mfa"),
        ]
        return custom + super().get_urls()

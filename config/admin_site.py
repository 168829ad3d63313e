"""Parley's admin site: Django's admin with a rate-limited, audited login and the operators'
statistics page."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, reverse

from accounts.models import SecurityEvent
from accounts.ratelimits import login_rate_limit_enforce
from accounts.security import security_event_record
from accounts.usernames import canonical_username_or_none
from core.errors import RateLimited
from escalations.permissions import can_handle_escalations


def _works_the_queue(request: HttpRequest) -> bool:
    """Operators (not superusers, whose work is the whole site) start on the queue."""
    user = request.user
    return bool(not user.is_superuser and can_handle_escalations(user))  # type: ignore[arg-type]


class ParleyAdminSite(admin.AdminSite):
    site_header = "Parley operations"
    site_title = "Parley admin"
    index_title = "Operations"
    index_template = "admin/parley_index.html"

    def login(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method != "POST":
            return super().login(request, extra_context)
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
        login_response = super().login(request, extra_context)
        if login_response.status_code != 302:  # Django re-renders the form when sign-in fails
            security_event_record(
                kind=SecurityEvent.Kind.LOGIN_FAILED,
                request=request,
                detail={"username": username, "via": "admin"},
            )
        elif login_response["Location"] == reverse("admin:index") and _works_the_queue(request):
            # Operators come to work the queue: land there, not on the generic index (which
            # stays one click away). A page they asked for (`next`) is kept.
            login_response["Location"] = reverse("admin:escalations_escalation_changelist")
        return login_response

    def get_urls(self) -> list[URLResolver | URLPattern]:
        from escalations.admin_views import statistics_view

        custom: list[URLResolver | URLPattern] = [
            path("statistics/", self.admin_view(statistics_view), name="statistics"),
        ]
        return custom + super().get_urls()

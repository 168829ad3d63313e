"""The admin's doors for the second factor: the code after the password, the enrolment page
(with a QR code drawn here, by segno, as an inline SVG image: no outside service, no script)
and the recovery codes shown once. The rules are accounts.mfa's, shared with the API.

The admin site (config.admin_site) wires these in: its login uses `SecondFactorLoginView`, it
serves `login_code_view` and `enrolment_view`, and it sends every admin page through
`second_factor_redirect` first, so that under STAFF_MFA_REQUIRED=1 staff without a factor see
the enrolment page before any other.
"""

from __future__ import annotations

from typing import Any

import segno
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from accounts import mfa
from accounts.admin_tickets import AMR_SESSION_KEY
from accounts.models import User
from accounts.ratelimits import login_budget_check, login_rate_limit_enforce
from accounts.services import password_confirm
from core.errors import Conflict, PermissionDenied, RateLimited
from core.request_context import CallContext

PENDING_SESSION_KEY = "parley_mfa_pending"
AMR_PASSWORD = ["pwd"]
AMR_PASSWORD_AND_CODE = ["pwd", "otp"]


def session_has_second_factor(request: HttpRequest) -> bool:
    amr = request.session.get(AMR_SESSION_KEY)
    return isinstance(amr, list) and "otp" in amr


class SecondFactorLoginView(LoginView):
    """Django's admin login, then the code: a right password for an account with a factor
    signs nobody in yet; it leaves an mfa_token (accounts.mfa, 5 minutes, single use, five
    wrong codes) in the not-yet-authenticated session and sends the browser to the code page."""

    def form_valid(self, form: Any) -> HttpResponse:
        user = form.get_user()
        if mfa.has_confirmed_factor(user):
            self.request.session[PENDING_SESSION_KEY] = {
                "token": mfa.mfa_challenge_issue(user=user, scope=None),
                "backend": user.backend,
                "next": self.get_success_url(),
            }
            return HttpResponseRedirect(reverse("admin:login_code"))
        response = super().form_valid(form)
        self.request.session[AMR_SESSION_KEY] = AMR_PASSWORD
        return response


def _safe_next(request: HttpRequest, target: Any) -> str:
    if isinstance(target, str) and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("admin:index")


def login_code_view(request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
    """The second step of the admin sign-in. Wrong codes spend the sign-in budgets of the
    client IP and of the account's canonical username, as on the API."""
    pending = request.session.get(PENDING_SESSION_KEY)
    token = pending.get("token") if isinstance(pending, dict) else None
    challenge = mfa.mfa_challenge_open(token)
    if challenge is None:
        request.session.pop(PENDING_SESSION_KEY, None)
        return HttpResponseRedirect(reverse("admin:login"))
    page = {**context, "title": "Two-factor authentication", "error": None}
    if request.method != "POST":
        return TemplateResponse(request, "admin/parley/login_code.html", page)
    username = challenge.user.get_username()
    try:
        login_budget_check(request=request, username=username)
    except RateLimited as exc:
        return _rate_limited(request, context, exc)
    if not mfa.mfa_challenge_complete(
        mfa_token=str(token),
        challenge=challenge,
        code=request.POST.get("code", ""),
        context=CallContext.from_request(request),
    ):
        try:
            login_rate_limit_enforce(request=request, username=username)
        except RateLimited as exc:
            return _rate_limited(request, context, exc)
        page["error"] = "That code is not valid. Enter a current code or a recovery code."
        return TemplateResponse(request, "admin/parley/login_code.html", page)
    backend = pending.get("backend") if isinstance(pending, dict) else None
    auth_login(request, challenge.user, backend=str(backend) if backend else None)
    request.session.pop(PENDING_SESSION_KEY, None)
    request.session[AMR_SESSION_KEY] = AMR_PASSWORD_AND_CODE
    return HttpResponseRedirect(
        _safe_next(request, pending.get("next") if isinstance(pending, dict) else None)
    )


def _rate_limited(
    request: HttpRequest, context: dict[str, Any], exc: RateLimited
) -> TemplateResponse:
    response = TemplateResponse(
        request,
        "admin/login_rate_limited.html",
        {**context, "title": "Log in", "retry_after": exc.retry_after},
        status=429,
    )
    response["Retry-After"] = str(exc.retry_after)
    return response


def second_factor_redirect(request: HttpRequest) -> str | None:
    """Where a signed-in admin user must go before this page, or None: under
    STAFF_MFA_REQUIRED=1, staff whose admin session was not proven with a second factor go to
    the enrolment page (which signs out an account that has a factor but did not use it, and
    lets one without a factor enrol). Costs no query: the session says how it was proven."""
    user = request.user
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return None
    if session_has_second_factor(request) or not mfa.mfa_required_for(user):  # type: ignore[arg-type]
        return None
    return reverse("admin:mfa")


def _qr_data_uri(uri: str) -> str:
    # A white background of its own: the admin has a dark theme, and a transparent code on it
    # would be black on near-black, unreadable to a camera.
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=4, light="white"))


def enrolment_view(request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
    """The signed-in user's second factor: enrol (QR code, secret, a code to confirm) or, once
    on, its status. Confirming shows the recovery codes, once, and marks this admin session as
    proven with the factor; every API session of the user is revoked."""
    user: User = request.user  # type: ignore[assignment]
    page: dict[str, Any] = {
        **context,
        "title": "Two-factor authentication",
        "required": mfa.mfa_required_for(user),
        "error": None,
    }
    if mfa.has_confirmed_factor(user):
        if not session_has_second_factor(request):
            # The account has a factor this session never used (it was signed in before the
            # factor was enrolled elsewhere): sign in again, with it.
            auth_logout(request)
            return HttpResponseRedirect(
                f"{reverse('admin:login')}?{REDIRECT_FIELD_NAME}={reverse('admin:index')}"
            )
        return TemplateResponse(
            request, "admin/parley/mfa.html", {**page, "status": mfa.mfa_status(user)}
        )
    if request.method == "POST":
        try:
            login_budget_check(request=request, username=user.get_username())
        except RateLimited as exc:
            return _rate_limited(request, context, exc)
        try:
            # Changing how the account signs in asks for the password again (ASVS 7.5.1).
            try:
                password_confirm(
                    user=user,
                    password=request.POST.get("password", ""),
                    purpose="a second-factor enrolment",
                    context=CallContext.from_request(request),
                )
            except PermissionDenied:
                raise mfa.InvalidCode() from None
            codes = mfa.totp_enrolment_confirm(
                user=user,
                code=request.POST.get("code", ""),
                keep_family=None,
                context=CallContext.from_request(request),
            )
        except mfa.InvalidCode:
            login_rate_limit_enforce(request=request, username=user.get_username())
            page["error"] = (
                "The password or the code is not right. Check your device's clock and try again."
            )
        except Conflict:
            pass  # the pending secret is gone (replaced elsewhere): show a new one below
        else:
            request.session[AMR_SESSION_KEY] = AMR_PASSWORD_AND_CODE
            return TemplateResponse(
                request,
                "admin/parley/recovery_codes.html",
                {**page, "title": "Recovery codes", "recovery_codes": codes},
            )
    device = mfa.pending_enrolment(user)
    if device is None:
        secret = mfa.totp_enrolment_start(user=user).secret
    else:
        secret = device.secret
    uri = mfa.totp_uri(user=user, secret=secret)
    return TemplateResponse(
        request,
        "admin/parley/mfa.html",
        {
            **page,
            "secret": secret,
            "secret_groups": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
            "otpauth_uri": uri,
            "qr_data_uri": _qr_data_uri(uri),
        },
    )

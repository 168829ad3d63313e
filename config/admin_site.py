"""Parley's admin site: Django's admin with a rate-limited, audited login, the operators'
statistics page, and ids in admin URLs read by the one id parser (core.ids)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.decorators import login_not_required
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.db import models
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
)
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
from accounts.operators import is_operator
from accounts.ratelimits import login_rate_limit_enforce
from accounts.security import security_event_record
from accounts.usernames import canonical_username_or_none
from core.errors import RateLimited
from core.ids import parse_id
from core.parsing import NOT_UTF8_FORM, form_body_is_utf8
from escalations.permissions import can_handle_escalations

# URL arguments of admin views that name a row by its primary key (Django's model pages, the
# "view on site" redirect, the user password page, Parley's own pages).
_ID_ARGUMENTS = ("object_id", "id", "content_type_id")


def _integer_pk(model: type[models.Model] | None) -> bool:
    if model is None:
        return False
    pk: Any = model._meta.pk
    while pk is not None and pk.is_relation:  # a parent link (multi-table inheritance)
        pk = pk.target_field
    return isinstance(pk, models.IntegerField)


def _view_owner(view: Any) -> admin.options.BaseModelAdmin | None:
    """The ModelAdmin a view is a method of, through decorators (`require_POST(self.x)`).
    Looked for at each layer: unwrapping a bound method all the way gives its plain function."""
    while view is not None:
        owner = getattr(view, "__self__", None)
        if isinstance(owner, admin.options.BaseModelAdmin):
            return owner
        view = getattr(view, "__wrapped__", None)
    return None


def _model_of(view: Callable[..., Any], name: str, kwargs: dict[str, Any]) -> type | None:
    """The model whose primary key URL argument `name` names, when it can be known."""
    if name == "content_type_id":
        return ContentType
    owner = _view_owner(view)
    if owner is not None:
        return owner.model  # type: ignore[no-any-return]
    content_type_id = parse_id(kwargs.get("content_type_id"))
    if content_type_id is not None:  # the "view on site" redirect names its model
        try:
            return ContentType.objects.get_for_id(content_type_id).model_class()
        except ContentType.DoesNotExist:
            return None
    return None


def ids_checked(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """`view` with every primary-key URL argument read by the one id parser (core.ids): a value
    that can name no row ("²", "٣", "-1", "0x1", "1e3", 0, 20 digits) is a 404 before the view
    runs — never a ValueError from `int()`, an OverflowError from SQLite, or a row that a
    lenient `int()` found ("٣" is 3). Applied by `admin_view` to every admin page, Django's and
    ours alike (after its sign-in check), so a new page is covered without asking."""

    @functools.wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        for name in _ID_ARGUMENTS:
            value = kwargs.get(name)
            if value is None or not _integer_pk(_model_of(view, name, kwargs)):
                continue
            parsed = parse_id(value)
            if parsed is None:
                raise Http404("No such object")
            kwargs[name] = parsed if isinstance(value, int) else str(parsed)
        return view(request, *args, **kwargs)

    return checked


class IdModelChoiceField(forms.ModelChoiceField):
    """A foreign-key select whose submitted value is read by the one id parser: "٣" is not row
    3, and 20 digits are "not a valid choice", not an OverflowError from SQLite's query."""

    def to_python(self, value: Any) -> Any:
        if value not in self.empty_values and not isinstance(value, models.Model):
            if parse_id(value) is None:
                raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return super().to_python(value)


class IdModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    """The many-to-many select (groups, permissions) with the same reading of each value."""

    def _check_values(self, value: Any) -> Any:
        for pk in value:
            if not isinstance(pk, models.Model) and parse_id(pk) is None:
                raise ValidationError(
                    self.error_messages["invalid_pk_value"],
                    code="invalid_pk_value",
                    params={"pk": pk},
                )
        return super()._check_values(value)  # type: ignore[misc]  # Django's, not in the stubs


class IdCheckedAdminMixin:
    """Every ModelAdmin of the site gets this (`ParleyAdminSite.register`): ids that reach a
    model admin from a form or a lookup are read by the one id parser when the model's key is an
    integer — the object of a page (`get_object`), the rows an action was asked to run on
    (`_selected_action`), and the choices of foreign-key and many-to-many fields."""

    model: type[models.Model]

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        if from_field is None and _integer_pk(self.model) and parse_id(object_id) is None:
            return None
        return super().get_object(request, object_id, from_field)  # type: ignore[misc]

    def response_action(self, request: HttpRequest, queryset: Any) -> Any:
        if _integer_pk(self.model):
            selected = request.POST.getlist(ACTION_CHECKBOX_NAME)
            kept = [str(pk) for pk in map(parse_id, selected) if pk is not None]
            if kept != selected:
                # Ids that name no possible row are not selected at all (Django then says that
                # nothing was selected, as for an empty selection).
                post = request.POST.copy()
                post.setlist(ACTION_CHECKBOX_NAME, kept)
                request.POST = post  # type: ignore[assignment]
        return super().response_action(request, queryset)  # type: ignore[misc]

    def _get_list_editable_queryset(self, request: HttpRequest, prefix: str) -> Any:
        # The rows of a list-editable page are named by the ids its formset posts back
        # (`form-0-<pk>`); Django reads them with the key's `to_python`, which lets 20 digits
        # through to the query (an OverflowError on SQLite). A value that can name no row makes
        # the whole submission malformed (400).
        if _integer_pk(self.model):
            field = rf"^{re.escape(prefix)}-\d+-{re.escape(self.model._meta.pk.name)}$"
            for name, value in request.POST.items():
                if re.match(field, name) and parse_id(value) is None:
                    raise SuspiciousOperation("A list row is named by an impossible id")
        return super()._get_list_editable_queryset(request, prefix)  # type: ignore[misc]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if _integer_key(db_field):
            kwargs.setdefault("form_class", IdModelChoiceField)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if _integer_key(db_field):
            kwargs.setdefault("form_class", IdModelMultipleChoiceField)
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]


def _integer_key(db_field: Any) -> bool:
    """A relation whose submitted value is an integer key of the related model."""
    return isinstance(db_field.remote_field.get_related_field(), models.IntegerField)


def _works_the_queue(request: HttpRequest) -> bool:
    """Operators (not superusers, whose work is the whole site) start on the queue."""
    user = request.user
    return bool(not user.is_superuser and can_handle_escalations(user))  # type: ignore[arg-type]


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
        if not form_body_is_utf8(request):
            # A name Django would have decoded to U+FFFD is malformed input, not a failed
            # sign-in: no attempt is counted or recorded for it.
            return HttpResponseBadRequest(NOT_UTF8_FORM, content_type="text/plain")
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
        elif login_response["Location"] == reverse("admin:index") and _works_the_queue(request):
            # Operators come to work the queue: land there, not on the generic index (which
            # stays one click away). A page they asked for (`next`) is kept.
            login_response["Location"] = reverse("admin:escalations_escalation_changelist")
        return login_response

    def register(self, model_or_iterable: Any, admin_class: Any = None, **options: Any) -> None:
        """Every model admin, Django's and third parties' included, reads ids with the one id
        parser (IdCheckedAdminMixin), so a new admin page needs nothing to be covered."""
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, IdCheckedAdminMixin):
            admin_class = type(
                admin_class.__name__,
                (IdCheckedAdminMixin, admin_class),
                {"__module__": admin_class.__module__, "__qualname__": admin_class.__qualname__},
            )
        super().register(model_or_iterable, admin_class, **options)

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        # The reports (statistics) are for operators; other staff do not see the link.
        context = {"parley_operator": is_operator(request.user), **(extra_context or {})}  # type: ignore[arg-type]
        return super().index(request, context)

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
        enrolment page and logout pass. Every page reads its ids with the one id parser
        (ids_checked)."""
        checked = super().admin_view(ids_checked(view), cacheable)

        def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if request.resolver_match is None or request.resolver_match.url_name not in (
                "mfa",
                "logout",
            ):
                target = second_factor_redirect(request)
                if target is not None:
                    return HttpResponseRedirect(target)
            return checked(request, *args, **kwargs)

        return functools.update_wrapper(inner, checked)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        from escalations.admin_views import statistics_view

        custom: list[URLResolver | URLPattern] = [
            path("statistics/", self.admin_view(statistics_view), name="statistics"),
            path("login/code/", self.login_code, name="login_code"),
            path("mfa/", self.admin_view(self.second_factor), name="mfa"),
        ]
        return custom + super().get_urls()

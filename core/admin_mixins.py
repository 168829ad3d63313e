"""ModelAdmin behaviour several apps' screens share, written once."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from core.ids import parse_id


class ChangeContextMixin:
    """A change page with context of its own: `change_context(request, object_id)` gets the id
    already parsed (core.ids), and is not called for one that is not an id — Django's own
    change view then answers as for a missing object."""

    def change_context(self, request: HttpRequest, object_id: int) -> dict[str, Any]:
        raise NotImplementedError

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        parsed = parse_id(object_id)
        if parsed is not None:
            context.update(self.change_context(request, parsed))
        return super().change_view(request, object_id, form_url, context)  # type: ignore[misc,no-any-return]


class SecretShownOnceMixin:
    """An add page whose object a service creates together with a secret that is shown once
    (an API key, a webhook's signing secret). The page shows `add_form` (the service's
    inputs); `create(request, obj, form)` calls the service, copies what the page needs onto
    `obj` and returns the secret; the add response shows it with `created_template`
    (context: `object`, and the secret named `shown_as`). In that
    response only: not through the messages framework, which would keep it in the session or
    a cookie until the next page; the admin's never_cache adds no-store, so no browser or proxy
    keeps the page either. Changes are saved as usual."""

    created_template: str
    created_title: str
    shown_as = "secret"
    # Named as django.contrib.auth's UserAdmin names its add page's form.
    add_form: type[forms.ModelForm[Any]]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)  # type: ignore[misc]

    def create(self, request: HttpRequest, obj: Any, form: Any) -> str:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)  # type: ignore[misc]
            return
        request._parley_secret_shown_once = self.create(request, obj, form)  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: str | None = None
    ) -> HttpResponse:
        secret = getattr(request, "_parley_secret_shown_once", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)  # type: ignore[misc,no-any-return]
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "title": self.created_title,
            "opts": self.model._meta,  # type: ignore[attr-defined]
            "object": obj,
            self.shown_as: secret,
        }
        return TemplateResponse(request, self.created_template, context)

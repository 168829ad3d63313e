"""Superuser screens: webhook endpoints (secret shown once) and their delivery attempts."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from accounts.admin import SuperuserOnlyMixin
from core.admin_mixins import SecretShownOnceMixin
from core.errors import UnprocessableRequest
from integrations import services
from integrations.models import WebhookDelivery, WebhookEndpoint
from messaging.events import EVENT_TYPES


class WebhookEndpointCreateForm(forms.ModelForm):
    # A URL typed without a scheme is taken as https (Django 6's default; Django 5 warns).
    url = forms.URLField(max_length=2000, assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=[(event, event) for event in EVENT_TYPES], widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("url", "events", "description")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            return services.webhook_url_validate(url)
        except UnprocessableRequest as exc:
            raise ValidationError(str(exc.errors()[0]["msg"])) from None


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(SuperuserOnlyMixin, SecretShownOnceMixin, admin.ModelAdmin):
    list_display = ("url", "events", "is_active", "created_at", "created_by")
    list_filter = ("is_active",)
    search_fields = ("url", "description")
    readonly_fields = ("created_at", "created_by")
    fields = ("url", "events", "description", "is_active", *readonly_fields)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("url", "events", "description") if obj is None else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The URL was checked against SSRF when created; changing it means a new endpoint.
        return (*self.readonly_fields, "url", "events") if obj is not None else ()

    add_form = WebhookEndpointCreateForm
    created_template = "admin/integrations/webhookendpoint/created.html"
    created_title = "Webhook endpoint created"

    def create(self, request: HttpRequest, obj: Any, form: Any) -> str:
        endpoint, secret = services.webhook_endpoint_create(
            actor=request.user,  # type: ignore[arg-type]
            url=form.cleaned_data["url"],
            events=list(form.cleaned_data["events"]),
            description=form.cleaned_data.get("description", ""),
        )
        obj.pk = endpoint.pk
        obj.events = endpoint.events
        return secret


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "endpoint",
        "event_type",
        "event_ref",
        "attempt",
        "status",
        "status_code",
        "error",
        "next_attempt_at",
    )
    list_filter = ("status", "delivered")
    search_fields = ("event__event_id", "endpoint__url")
    list_select_related = ("endpoint", "event")
    actions = ["redeliver"]

    @admin.display(description="event")
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.type

    @admin.display(description="event id")
    def event_ref(self, obj: WebhookDelivery) -> str:
        return obj.event.event_id

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # attempts are a record; "redeliver" queues a new one

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Redeliver the selected events")
    def redeliver(self, request: HttpRequest, queryset: Any) -> None:
        count = services.webhook_deliveries_redeliver(
            delivery_ids=list(queryset.values_list("pk", flat=True))
        )
        self.message_user(request, f"Queued {count} new attempt(s).")

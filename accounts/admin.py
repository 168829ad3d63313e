"""Superuser-only screens: users, API keys, security events (docs/escalations.md)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.db.models import Exists, OuterRef
from django.http import HttpRequest
from django.utils import timezone

from accounts import mfa, services
from accounts.data_rights import user_erase
from accounts.models import ApiKey, SecurityEvent, TotpDevice, User
from accounts.scopes import ALL_SCOPES, SCOPE_DESCRIPTIONS
from accounts.sessions import sessions_revoke_others
from core.admin_mixins import SecretShownOnceMixin
from core.request_context import CallContext


class SuperuserOnlyMixin:
    """Operators are staff too; these screens are for superusers only, whatever Django
    permissions a group may have been given by mistake."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)


@admin.register(User)
class ParleyUserAdmin(SuperuserOnlyMixin, UserAdmin):
    list_display = (
        "username",
        "email",
        "is_active",
        "is_staff",
        "is_superuser",
        "second_factor",
        "date_joined",
    )
    actions = ["reset_second_factor", "sign_out_everywhere"]
    # Operators set their own display name on the escalation list; superusers may set anyone's.
    fieldsets = (
        *(UserAdmin.fieldsets or ())[:1],
        ("Personal info", {"fields": ("first_name", "last_name", "display_name", "email")}),
        *(UserAdmin.fieldsets or ())[2:],
    )

    # Deleting a customer here is the same act as DELETE /customers/{id}: everything that is
    # theirs goes (the data-rights hooks: conversations, webhook events, live sockets closed),
    # and it is recorded as an erasure. Staff accounts are removed the ordinary way (their
    # names stay on other people's conversations; user_erase refuses them).
    def delete_model(self, request: HttpRequest, obj: User) -> None:
        if obj.is_staff or obj.is_superuser:
            super().delete_model(request, obj)
            return
        user_erase(user=obj, actor=request.user, context=CallContext.from_request(request))  # type: ignore[arg-type]

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for user in queryset:
            self.delete_model(request, user)

    def get_queryset(self, request: HttpRequest) -> Any:
        confirmed = TotpDevice.objects.filter(user=OuterRef("pk"), confirmed_at__isnull=False)
        return super().get_queryset(request).annotate(has_second_factor=Exists(confirmed))

    @admin.display(boolean=True, description="Second factor", ordering="has_second_factor")
    def second_factor(self, obj: User) -> bool:
        return bool(getattr(obj, "has_second_factor", False))

    @admin.action(description="Sign out everywhere (revoke every API session)")
    def sign_out_everywhere(self, request: HttpRequest, queryset: Any) -> None:
        revoked = 0
        for user in queryset:
            revoked += sessions_revoke_others(
                user=user,
                keep_family=None,
                context=CallContext.from_request(request),
                reason="revoked by a superuser",
            )
        self.message_user(request, f"Revoked {revoked} session(s).")

    @admin.action(description="Reset second factor (the user enrols again)")
    def reset_second_factor(self, request: HttpRequest, queryset: Any) -> None:
        reset = 0
        for user in queryset:
            if user.pk == request.user.pk:
                self.message_user(
                    request,
                    "Your own factor is not reset here: sign in with it and turn it off.",
                    level="warning",
                )
                continue
            mfa.mfa_reset(
                actor=request.user,  # type: ignore[arg-type]
                user=user,
                context=CallContext.from_request(request),
            )
            reset += 1
        self.message_user(request, f"Reset the second factor of {reset} user(s).")


class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(scope, f"{scope}: {SCOPE_DESCRIPTIONS[scope]}") for scope in ALL_SCOPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="In use, a key never has more than its owner's role allows.",
    )

    class Meta:
        model = ApiKey
        fields = ("name", "owner", "scopes", "expires_at")

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return expires_at


@admin.register(ApiKey)
class ApiKeyAdmin(SuperuserOnlyMixin, SecretShownOnceMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "prefix",
        "owner",
        "scopes",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "use_count",
    )
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "owner__username")
    readonly_fields = (
        "prefix",
        "created_at",
        "created_by",
        "revoked_at",
        "last_used_at",
        "use_count",
    )
    fields = ("name", "owner", "scopes", "expires_at", *readonly_fields)
    actions = ["revoke_selected"]

    add_form = ApiKeyCreateForm
    created_template = "admin/accounts/apikey/created.html"
    created_title = "API key created"
    shown_as = "raw_key"

    def create(self, request: HttpRequest, obj: ApiKey, form: Any) -> str:
        key, raw = services.api_key_create(
            actor=request.user,  # type: ignore[arg-type]
            name=obj.name,
            owner_id=obj.owner_id,
            scopes=list(obj.scopes or []),
            expires_at=obj.expires_at,
        )
        obj.pk = key.pk
        obj.prefix = key.prefix
        return raw

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        if obj is not None:
            return (*self.readonly_fields, "owner", "scopes")
        return self.readonly_fields

    @admin.action(description="Revoke selected API keys")
    def revoke_selected(self, request: HttpRequest, queryset: Any) -> None:
        for key in queryset:
            services.api_key_revoke(actor=request.user, api_key_id=key.pk)  # type: ignore[arg-type]
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


@admin.register(SecurityEvent)
class SecurityEventAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
    list_display = ("created_at", "kind", "level", "user", "ip", "path", "request_id")
    list_filter = ("kind", "level")
    search_fields = ("user__username", "ip", "path", "request_id")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # an audit trail is read-only

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in self.model._meta.fields]

"""Superuser-only screens: users, API keys, security events (SPEC §7)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest

from accounts import services
from accounts.models import ApiKey, SecurityEvent, User


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
    list_display = ("username", "email", "is_active", "is_staff", "is_superuser", "date_joined")


@admin.register(ApiKey)
class ApiKeyAdmin(SuperuserOnlyMixin, admin.ModelAdmin):
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

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            # Only name and expiry are editable; the secret and owner never change.
            super().save_model(request, obj, form, change)
            return
        key, raw = services.api_key_create(
            actor=request.user,  # type: ignore[arg-type]
            name=obj.name,
            owner_id=obj.owner_id,
            scopes=list(obj.scopes or []),
            expires_at=obj.expires_at,
        )
        obj.pk = key.pk
        obj.prefix = key.prefix
        # Shown once, like the API: only a hash is stored.
        messages.warning(
            request,
            f"API key created. Copy it now, it will not be shown again: {raw}",
        )

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

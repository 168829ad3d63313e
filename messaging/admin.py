"""Conversations and messages in the admin: read-only for everyone (docs/escalations.md).

Transcripts change only through the services (customers' messages, the agent, the operators'
reply box on the escalation page), which keep `seq` gap-free and push every message live. An
edit or a single deleted row here would break both, so there is no add, change or delete.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.text import Truncator

from accounts.operators import is_operator
from core.admin_mixins import ChangeContextMixin
from messaging.models import Conversation, Message
from messaging.selectors import conversation_transcript


class CascadeOnlyDeleteMixin:
    """No deleting single rows (their conversation would lose a message or an escalation it
    depends on). Superusers may still delete what cascades from a user or a conversation:
    Django's delete confirmation asks every related admin for delete permission, and refusing
    here would make accounts undeletable."""

    def get_actions(self, request: HttpRequest) -> Any:
        actions = super().get_actions(request)  # type: ignore[misc]
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        raise PermissionDenied


class OperatorScreenMixin:
    """Screens for operators only (accounts.operators.is_operator): the admin lets every staff
    account in, but conversations, messages and escalations are shown to operators alone, as
    the staff REST routes and sockets do. Django's model permissions still apply on top."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_operator(request.user) and super().has_module_permission(request)  # type: ignore[arg-type,misc]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_operator(request.user) and super().has_view_permission(request, obj)  # type: ignore[arg-type,misc]


class ReadOnlyMixin:
    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(OperatorScreenMixin, ReadOnlyMixin, ChangeContextMixin, admin.ModelAdmin):
    list_display = ("id", "customer", "status", "turn_count", "created_at", "updated_at")
    list_filter = ("status",)
    search_fields = ("customer__username",)
    list_select_related = ("customer",)
    ordering = ("-updated_at", "-id")
    show_full_result_count = False
    fields = ("customer", "status", "turn_count", "last_seq", "created_at", "updated_at")
    readonly_fields = fields
    change_form_template = "admin/messaging/conversation/change_form.html"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A whole conversation may go (superusers; its messages and escalations go with it).
        return bool(request.user.is_active and request.user.is_superuser)

    def change_context(self, request: HttpRequest, object_id: int) -> dict[str, Any]:
        messages, omitted = conversation_transcript(conversation_id=object_id)
        return {"transcript_messages": messages, "transcript_omitted": omitted}


@admin.register(Message)
class MessageAdmin(OperatorScreenMixin, ReadOnlyMixin, CascadeOnlyDeleteMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "conversation_id",
        "seq",
        "role",
        "author",
        "short_content",
        "intent",
        "confidence",
        "created_at",
    )
    list_filter = ("role", "intent")
    search_fields = ("conversation__customer__username",)
    list_select_related = ("author",)
    ordering = ("-created_at", "-id")
    show_full_result_count = False
    fields = (
        "conversation",
        "seq",
        "role",
        "author",
        "content",
        "intent",
        "confidence",
        "metadata",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description="content")
    def short_content(self, obj: Message) -> str:
        return Truncator(obj.content).chars(80)

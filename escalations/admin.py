"""The operators' workplace: the escalation queue, its actions, and the escalation page with
the transcript and the reply box (docs/escalations.md).

Nothing here writes a field. "Assign to me", "Resolve", the reply box and the buttons on the
escalation page all call escalations.services — the same functions as the REST API — so the
system messages, the locking (one of two concurrent operators wins) and the live pushes to the
customer happen whichever door an operator uses. The escalation page is view-only (every field
read-only, no Save button) for the same reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, OuterRef, QuerySet, Subquery, Value, When
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from accounts.admin_tickets import TICKET_TTL_SECONDS, admin_ticket_issue
from accounts.models import User
from accounts.operators import operators
from accounts.profile import MAX_DISPLAY_NAME_CHARS, display_name_set
from core.admin_mixins import ChangeContextMixin
from core.errors import ParleyError
from core.ids import parse_id
from escalations import inbox, selectors, services
from escalations.models import Escalation, OperatorProfile, SavedReply
from escalations.operators import AWAY, operators_list
from escalations.permissions import is_operator
from escalations.schemas import MAX_RESOLUTION_NOTES_CHARS
from escalations.services import auto_assignment_enabled, operator_presence_set
from messaging.admin import CascadeOnlyDeleteMixin, OperatorScreenMixin
from messaging.models import Message
from messaging.search import SearchHit, message_search
from messaging.selectors import conversation_transcript
from messaging.validation import MAX_MESSAGE_CHARS

UNRESOLVED = (Escalation.Status.OPEN, Escalation.Status.ASSIGNED)


class PageActionForm(forms.Form):
    """A form of one field that the escalation page posts to run one service on the
    escalation's conversation: what the page says when it is refused and when it succeeded,
    what the admin log records, and the service parameter the field fills (`argument`). The
    service also gets the escalation's id, unless the action is the conversation's (a note)."""

    argument: str
    refused: str
    logged: str
    done: str
    per_escalation = True

    def arguments(self, escalation: Escalation) -> dict[str, Any]:
        (value,) = self.cleaned_data.values()
        ids = {"escalation_id": escalation.pk} if self.per_escalation else {}
        return {self.argument: value, **ids}


class ReplyForm(PageActionForm):
    message = forms.CharField(
        label="Reply to the customer",
        max_length=MAX_MESSAGE_CHARS,
        widget=forms.Textarea(attrs={"rows": 4, "class": "parley-reply"}),
    )
    argument = "text"
    refused = f"Write a message of 1 to {MAX_MESSAGE_CHARS} characters."
    logged = "Replied"
    done = "Reply sent."


class ResolveForm(PageActionForm):
    resolution_notes = forms.CharField(
        label="Resolution notes",
        required=False,
        max_length=MAX_RESOLUTION_NOTES_CHARS,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    argument = "notes"
    refused = "Resolution notes are too long."
    logged = "Resolved"
    done = "Escalation resolved."


class NoteForm(PageActionForm):
    note = forms.CharField(
        label="Internal note",
        max_length=inbox.MAX_NOTE_CHARS,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Only operators see notes; the customer never does.",
    )
    argument = "text"
    # A note belongs to the conversation (its current escalation, else its latest one).
    per_escalation = False
    refused = f"Write a note of 1 to {inbox.MAX_NOTE_CHARS} characters."
    logged = "Added an internal note"
    done = "Note added."


SEARCH_HITS_SHOWN = 10
SEARCH_HITS_FILTERED = 200


def _search_hits(request: HttpRequest, term: str) -> list[SearchHit]:
    """The full-text hits for the list's search box, computed once per request (the list and
    its "matching messages" panel share them). Staff search every conversation, as over the
    API; the words of internal notes are never searched."""
    term = term.strip()[:200]
    if not term:
        return []
    cached = getattr(request, "_parley_search_hits", None)
    if cached is not None and cached[0] == term:
        return cached[1]  # type: ignore[no-any-return]
    hits, _ = message_search(q=term, customer_id=None, status=None, limit=SEARCH_HITS_FILTERED)
    request._parley_search_hits = (term, hits)  # type: ignore[attr-defined]
    return hits


def _minutes(seconds: float) -> str:
    minutes = abs(int(seconds // 60)) if seconds >= 0 else abs(int(-seconds // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def sla_badge(escalation: Escalation, *, now: Any) -> str:
    """The SLA cell of the list and the escalation page: the next pending due time as a
    countdown (kept current by inbox.js from `data-due`), "due soon" within
    SLA_DUE_SOON_MINUTES, and a highlight once an SLA is missed."""
    breached = escalation.sla_breaches(now=now)
    if escalation.status == Escalation.Status.RESOLVED:
        if breached:
            return format_html(
                '<span class="parley-sla parley-sla-{}">{}</span>', "missed", "missed"
            )
        if escalation.resolution_due or escalation.first_response_due:
            return format_html('<span class="parley-sla parley-sla-{}">{}</span>', "met", "met")
        return "—"
    if escalation.first_response_at is None and escalation.first_response_due is not None:
        due, label = escalation.first_response_due, "first reply"
    elif escalation.resolution_due is not None:
        due, label = escalation.resolution_due, "resolution"
    else:
        return "—"
    left = (due - now).total_seconds()
    state = (
        "breached" if breached else "soon" if left <= settings.SLA_DUE_SOON_MINUTES * 60 else "ok"
    )
    text = f"{label} overdue {_minutes(-left)}" if left < 0 else f"{label} in {_minutes(left)}"
    if breached and left >= 0:
        text = f"{' and '.join(b.replace('_', ' ') for b in breached)} missed; {text}"
    return format_html(
        '<span class="parley-sla parley-sla-{}" data-due="{}" data-label="{}" data-missed="{}">'
        "{}</span>",
        state,
        due.isoformat(),
        label,
        "1" if breached else "",
        text,
    )


class StatusFilter(admin.SimpleListFilter):
    """Status, plus "unresolved" (open or assigned): the queue an operator works from, and what
    the list shows when no status is chosen. "All" must be asked for (`?status=all`)."""

    title = "status"
    parameter_name = "status"
    ALL = "all"
    DEFAULT = "unresolved"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("unresolved", "Unresolved"), *Escalation.Status.choices]

    def value(self) -> str:
        return super().value() or self.DEFAULT

    def choices(self, changelist: Any) -> Any:
        current = self.value()
        yield {
            "selected": current == self.ALL,
            "query_string": changelist.get_query_string({self.parameter_name: self.ALL}),
            "display": "All",
        }
        for lookup, title in self.lookup_choices:
            yield {
                "selected": current == str(lookup),
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Escalation]) -> Any:
        value = self.value()
        if value == "unresolved":
            return queryset.filter(status__in=UNRESOLVED)
        if value in Escalation.Status.values:
            return queryset.filter(status=value)
        return queryset


@admin.register(Escalation)
class EscalationAdmin(
    OperatorScreenMixin, CascadeOnlyDeleteMixin, ChangeContextMixin, admin.ModelAdmin
):
    # The conversation's id leads: it is the id the API's /escalations/{id}/... paths take (and
    # the customer's), so the list never shows an escalation number one could mistake for it.
    list_display = ("conversation_number", "status", "sla", "age", "customer", "topic", "assignee")
    list_display_links = ("conversation_number",)
    list_filter = (StatusFilter, ("assigned_to", admin.RelatedOnlyFieldListFilter))
    search_fields = ("conversation__customer__username",)
    search_help_text = "Customer username, or words from the conversation's messages"
    list_select_related = ("conversation__customer", "assigned_to")
    # Unresolved before resolved, oldest first: the operator who opens the list sees who has
    # waited longest at the top.
    ordering = (
        Case(
            When(status=Escalation.Status.RESOLVED, then=Value(1)),
            default=Value(0),
            output_field=IntegerField(),
        ).asc(),
        "created_at",
        "id",
    )
    actions = ("assign_to_me", "resolve_selected")
    fields = (
        "conversation_link",
        "customer",
        "status",
        "reason",
        "intent",
        "confidence",
        "created_at",
        "assigned_to",
        "assigned_at",
        "first_response_at",
        "resolved_at",
        "resolved_by",
        "resolution_notes",
    )
    readonly_fields = fields
    change_form_template = "admin/escalations/escalation/change_form.html"

    # --- Permissions: state changes only through the services --------------------------------

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # escalations are opened by the agent's hand-off (messaging.services)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Model-level "change" is the operator rule (`is_operator`, the same as
        the services and REST): it enables the actions and the reply box. The page of one
        escalation is always view-only: no form save may bypass the services (a stale form
        could overwrite a concurrent resolve)."""
        if obj is not None:
            return False
        return is_operator(request.user)  # type: ignore[arg-type]

    def _can_work(self, request: HttpRequest) -> bool:
        return is_operator(request.user)  # type: ignore[arg-type]

    # --- The list ---------------------------------------------------------------------------

    @admin.display(description="conversation", ordering="conversation_id")
    def conversation_number(self, obj: Escalation) -> str:
        return f"#{obj.conversation_id}"

    @admin.display(description="waiting")
    def age(self, obj: Escalation) -> str:
        if obj.resolved_at is not None:
            return f"resolved after {timesince(obj.created_at, obj.resolved_at)}"
        return timesince(obj.created_at, timezone.now())

    @admin.display(description="SLA")
    def sla(self, obj: Escalation) -> str:
        return sla_badge(obj, now=timezone.now())

    @admin.display(description="topic / last message")
    def topic(self, obj: Escalation) -> str:
        """What the case is about: the intent the agent saw, and the customer's latest words
        (the reason only when it says more than "asked for a human")."""
        last = getattr(obj, "last_customer_message", None) or ""
        if len(last) > 140:
            last = last[:139] + "…"
        topic = (obj.intent or "").replace("_", " ").capitalize() or "—"
        return format_html(
            '<strong class="parley-topic">{}</strong> <span class="parley-last">{}</span>'
            '<span class="parley-reason-small">{}</span>',
            topic,
            f"“{last}”" if last else "",
            obj.reason if obj.reason and obj.intent != "human_request" else "",
        )

    @admin.display(description="assignee", ordering="assigned_to__username")
    def assignee(self, obj: Escalation) -> str:
        return obj.assigned_to.public_name if obj.assigned_to else "—"

    @admin.display(description="customer", ordering="conversation__customer__username")
    def customer(self, obj: Escalation) -> str:
        return obj.conversation.customer.get_username()

    @admin.display(description="conversation")
    def conversation_link(self, obj: Escalation) -> str:
        return format_html(
            '<a href="{}">#{} ({})</a>',
            reverse("admin:messaging_conversation_change", args=[obj.conversation_id]),
            obj.conversation_id,
            obj.conversation.get_status_display().lower(),
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Escalation]:
        return (
            super()
            .get_queryset(request)
            .select_related("conversation__customer", "assigned_to", "resolved_by")
            .annotate(
                last_customer_message=Subquery(
                    Message.objects.filter(
                        conversation=OuterRef("conversation"), role=Message.Role.CUSTOMER
                    )
                    .order_by("-seq")
                    .values("content")[:1]
                )
            )
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Escalation], search_term: str
    ) -> tuple[QuerySet[Escalation], bool]:
        """The customer's username as before, or the words of their messages: the full-text
        search of GET /search (messaging.search), as staff see it."""
        by_username, duplicates = super().get_search_results(request, queryset, search_term)
        hits = _search_hits(request, search_term)
        if not hits:
            return by_username, duplicates
        by_words = queryset.filter(conversation_id__in={hit.conversation_id for hit in hits})
        return by_username | by_words, duplicates

    # --- Actions ----------------------------------------------------------------------------

    def _run(self, request: HttpRequest, escalation: Escalation, label: str, call: Any) -> bool:
        """Run one service call; report a refusal (409, 404, 422) as an admin message."""
        try:
            call()
        except ParleyError as exc:
            self.message_user(
                request, f"Conversation #{escalation.conversation_id}: {exc.detail}", messages.ERROR
            )
            return False
        self.log_change(request, escalation, label)
        return True

    @admin.action(description="Assign to me", permissions=["change"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[Escalation]) -> None:
        actor: User = request.user  # type: ignore[assignment]
        done = 0
        for escalation in queryset.filter(status__in=UNRESOLVED):
            holder = escalation.assigned_to
            if holder is not None and holder.pk != actor.pk:
                # A takeover is deliberate (the escalation page), never a side effect of a
                # bulk selection.
                self.message_user(
                    request,
                    f"Conversation #{escalation.conversation_id}: held by {holder.public_name}; "
                    "open it to take over.",
                    messages.WARNING,
                )
                continue
            done += self._run(
                request,
                escalation,
                "Assigned to me",
                lambda e=escalation: services.escalation_assign(
                    conversation_id=e.conversation_id, actor=actor, escalation_id=e.pk
                ),
            )
        skipped = queryset.exclude(status__in=UNRESOLVED).count()
        if done:
            self.message_user(request, f"Assigned {done} escalation(s) to you.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"Skipped {skipped} resolved escalation(s).", messages.WARNING
            )

    @admin.action(description="Resolve…", permissions=["change"])
    def resolve_selected(
        self, request: HttpRequest, queryset: QuerySet[Escalation]
    ) -> HttpResponse | None:
        """An intermediate page asks for the notes; its submit comes back here with post=yes."""
        actor: User = request.user  # type: ignore[assignment]
        unresolved = list(queryset.filter(status__in=UNRESOLVED))
        if not unresolved:
            self.message_user(
                request, "None of the selected escalations is unresolved.", messages.WARNING
            )
            return None
        form = ResolveForm(request.POST if request.POST.get("post") == "yes" else None)
        if form.is_valid():
            notes = form.cleaned_data["resolution_notes"]
            done = 0
            for escalation in unresolved:
                done += self._run(
                    request,
                    escalation,
                    "Resolved",
                    lambda e=escalation: services.escalation_resolve(
                        conversation_id=e.conversation_id,
                        actor=actor,
                        notes=notes,
                        escalation_id=e.pk,
                    ),
                )
            if done:
                self.message_user(request, f"Resolved {done} escalation(s).", messages.SUCCESS)
            return None  # back to the list
        context = {
            **self.admin_site.each_context(request),
            "title": "Resolve escalations",
            "opts": self.model._meta,
            "escalations": unresolved,
            "form": form,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "action_name": "resolve_selected",
        }
        return TemplateResponse(
            request, "admin/escalations/escalation/resolve_selected.html", context
        )

    # --- The escalation page: transcript, reply box, assign/resolve buttons -----------------

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        prefix = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        # Every page action is a POST through the admin's own checks (staff, CSRF, never_cache).
        actions: list[tuple[str, Callable[..., HttpResponse], str]] = [
            ("live-ticket/", self.live_ticket_view, "live_ticket"),
            ("display-name/", self.display_name_view, "display_name"),
            ("presence/", self.presence_view, "presence"),
            ("<int:object_id>/notes/", self.note_view, "note"),
            ("<int:object_id>/reply/", self.reply_view, "reply"),
            ("<int:object_id>/assign/", self.assign_view, "assign"),
            ("<int:object_id>/resolve/", self.resolve_view, "resolve"),
        ]
        return [
            *(
                path(route, wrap(require_POST(view)), name=f"{prefix}_{name}")
                for route, view, name in actions
            ),
            *super().get_urls(),
        ]

    def change_context(self, request: HttpRequest, object_id: int) -> dict[str, Any]:
        escalation = selectors.escalation_get(escalation_id=object_id)
        if escalation is None:
            return {}
        rows, omitted = conversation_transcript(conversation_id=escalation.conversation_id)
        unresolved = escalation.status in UNRESOLVED
        can_work = self._can_work(request)
        staff = inbox.colleagues_list()
        statuses = {status.id: status for status in operators_list()}
        colleagues = [
            (user, statuses.get(user.pk))
            for user in staff
            if user.pk not in (escalation.assigned_to_id, request.user.pk)
        ]
        # Online colleagues with room first; the select itself starts empty, so nobody is
        # picked by default (the list used to start at the superuser).
        colleagues.sort(
            key=lambda pair: (
                pair[1] is None or pair[1].status != "online",
                pair[1] is None or pair[1].open_assigned >= pair[1].capacity,
                pair[0].public_name.casefold(),
            )
        )
        return dict(
            escalation=escalation,
            transcript_messages=rows,
            transcript_omitted=omitted,
            last_seq=rows[-1].seq if rows else 0,
            can_reply=can_work and unresolved,
            can_assign=can_work and unresolved and escalation.assigned_to_id != request.user.pk,
            can_resolve=can_work and unresolved,
            can_note=can_work,
            colleagues=colleagues if can_work and unresolved else [],
            reply_form=ReplyForm(),
            resolve_form=ResolveForm(),
            note_form=NoteForm(),
            notes=inbox.note_list(conversation_id=escalation.conversation_id),
            saved_replies=list(SavedReply.objects.all()),
            customer=inbox.customer_context(conversation=escalation.conversation),
            sla_badge=sla_badge(escalation, now=timezone.now()),
            sla_due_soon_seconds=int(settings.SLA_DUE_SOON_MINUTES * 60),
            ticket_url=reverse("admin:escalations_escalation_live_ticket"),
            # For the live assignee (events carry the id); autoescaped into an attribute.
            staff_names=json.dumps({user.pk: user.public_name for user in staff}),
            # The page needs the width: the app list is one click away in the breadcrumbs.
            is_nav_sidebar_enabled=False,
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        status = request.GET.get("status") or StatusFilter.DEFAULT
        team = operators_list()
        me = next((s for s in team if s.id == request.user.pk), None)
        context = {
            **(extra_context or {}),
            "title": "Escalations to handle" if status == StatusFilter.DEFAULT else "Escalations",
            "ticket_url": reverse("admin:escalations_escalation_live_ticket"),
            "display_name_url": reverse("admin:escalations_escalation_display_name"),
            "presence_url": reverse("admin:escalations_escalation_presence"),
            "display_name_max": MAX_DISPLAY_NAME_CHARS,
            "waiting_count": Escalation.objects.filter(
                status=Escalation.Status.OPEN, assigned_to__isnull=True
            ).count(),
            "operators": team,
            "me": me,
            "auto_assignment": auto_assignment_enabled(),
            "search_hits": _search_hits(request, request.GET.get("q", "")),
            "sla_due_soon_seconds": int(settings.SLA_DUE_SOON_MINUTES * 60),
            # The columns and the filters fit 1280 px only without the app sidebar.
            "is_nav_sidebar_enabled": False,
        }
        return super().changelist_view(request, context)

    def presence_view(self, request: HttpRequest) -> HttpResponse:
        """The inbox's away / back switch: the service of POST /operators/me/presence."""
        if self._run_presence(request, str(request.POST.get("status", ""))):
            away = request.POST.get("status") == AWAY
            self.message_user(
                request,
                "You are away: no escalations are assigned to you automatically."
                if away
                else "You are back: escalations can be assigned to you again.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(reverse("admin:escalations_escalation_changelist"))

    def _run_presence(self, request: HttpRequest, status: str) -> bool:
        try:
            operator_presence_set(actor=request.user, status=status)  # type: ignore[arg-type]
        except ParleyError as exc:
            self.message_user(request, str(exc.detail), messages.ERROR)
            return False
        return True

    def live_ticket_view(self, request: HttpRequest) -> HttpResponse:
        """A single-use ticket for the live channel (accounts/admin_tickets.py). POST only, with
        the CSRF token (Django's middleware checks it), from a signed-in staff session."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        ticket = admin_ticket_issue(
            user=request.user,  # type: ignore[arg-type]
            session_key=request.session.session_key,
        )
        response = JsonResponse({"ticket": ticket, "expires_in": TICKET_TTL_SECONDS})
        response["Cache-Control"] = "no-store"
        return response

    def display_name_view(self, request: HttpRequest) -> HttpResponse:
        """An operator sets the name customers see on their messages and notices."""
        try:
            user = display_name_set(
                user=request.user,  # type: ignore[arg-type]
                name=str(request.POST.get("display_name", "")),
            )
        except (PermissionError, ValueError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(
                request, f"Customers now see you as {user.public_name}.", messages.SUCCESS
            )
        return HttpResponseRedirect(reverse("admin:escalations_escalation_changelist"))

    def note_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        return self._form_action(request, object_id, NoteForm, inbox.note_add, anchor="notes")

    def _escalation_for_work(self, request: HttpRequest, object_id: int) -> Escalation:
        if not self._can_work(request):
            raise PermissionDenied
        return get_object_or_404(self.get_queryset(request), pk=object_id)

    def _back(self, escalation: Escalation, anchor: str = "composer") -> HttpResponseRedirect:
        url = reverse("admin:escalations_escalation_change", args=[escalation.pk])
        return HttpResponseRedirect(f"{url}#{anchor}")

    def _form_action(
        self,
        request: HttpRequest,
        object_id: int,
        form_class: type[PageActionForm],
        service: Callable[..., Any],
        anchor: str = "composer",
    ) -> HttpResponse:
        """A form posted from the escalation page: refused (back to the composer), or its
        service run as `_run` runs it, and back to the page at `anchor`."""
        escalation = self._escalation_for_work(request, object_id)
        form = form_class(request.POST)
        if not form.is_valid():
            self.message_user(request, form.refused, messages.ERROR)
            return self._back(escalation)
        if self._run(
            request,
            escalation,
            form.logged,
            lambda: service(
                conversation_id=escalation.conversation_id,
                actor=request.user,
                **form.arguments(escalation),
            ),
        ):
            self.message_user(request, form.done, messages.SUCCESS)
        return self._back(escalation, anchor=anchor)

    def reply_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        return self._form_action(request, object_id, ReplyForm, services.escalation_reply)

    def assign_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """ "Assign to me", or to the colleague chosen in the select (`operator_id`)."""
        escalation = self._escalation_for_work(request, object_id)
        raw = (request.POST.get("operator_id") or "").strip()
        operator_id = parse_id(raw) if raw else None
        if raw and operator_id is None:
            self.message_user(request, "Choose a colleague from the list.", messages.ERROR)
            return self._back(escalation)
        assignee: list[User | None] = []
        if self._run(
            request,
            escalation,
            "Assigned",
            lambda: assignee.append(
                services.escalation_assign(
                    conversation_id=escalation.conversation_id,
                    actor=request.user,  # type: ignore[arg-type]
                    escalation_id=escalation.pk,
                    assignee=inbox.assignee_get(operator_id=operator_id),
                ).assigned_to
            ),
        ):
            holder = assignee[0] if assignee else None
            self.message_user(
                request,
                "Assigned to you."
                if holder is None or holder.pk == request.user.pk
                else f"Assigned to {holder.public_name}.",
                messages.SUCCESS,
            )
        return self._back(escalation)

    def resolve_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        return self._form_action(request, object_id, ResolveForm, services.escalation_resolve)


@admin.register(SavedReply)
class SavedReplyAdmin(admin.ModelAdmin):
    """Canned answers shared by the team: every operator may add, edit and remove them (the
    same right as working escalations, so the Operators group needs no extra permissions)."""

    list_display = ("title", "preview", "created_by", "updated_at")
    search_fields = ("title", "body")
    fields = ("title", "body")

    @admin.display(description="body")
    def preview(self, obj: SavedReply) -> str:
        return obj.body if len(obj.body) <= 80 else obj.body[:79] + "…"

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_operator(request.user)  # type: ignore[arg-type]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_operator(request.user)  # type: ignore[arg-type]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_operator(request.user)  # type: ignore[arg-type]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_operator(request.user)  # type: ignore[arg-type]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_operator(request.user)  # type: ignore[arg-type]

    def save_model(self, request: HttpRequest, obj: SavedReply, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)


class OperatorProfileForm(forms.ModelForm):
    class Meta:
        model = OperatorProfile
        fields = ("user", "capacity", "away")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "user" in self.fields:
            # Only operators have a routing profile.
            self.fields["user"].queryset = operators().order_by("username")  # type: ignore[attr-defined]


@admin.register(OperatorProfile)
class OperatorProfileAdmin(admin.ModelAdmin):
    """Routing settings per operator, for superusers: each operator's capacity (empty: the
    deployment's OPERATOR_CAPACITY) and the away switch operators also flip themselves."""

    form = OperatorProfileForm
    list_display = ("user", "capacity", "away", "last_assigned_at")
    list_editable = ("capacity", "away")
    list_select_related = ("user",)
    readonly_fields = ("last_assigned_at",)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The user of an existing profile is fixed (it is the primary key).
        return ("user", "last_assigned_at") if obj is not None else ("last_assigned_at",)

    def save_model(
        self, request: HttpRequest, obj: OperatorProfile, form: Any, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        # A raised capacity or an operator back from away may take waiting escalations.
        services.queue_drain_on_commit()

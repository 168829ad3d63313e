"""Hostile ids at every admin door, generated from the admin's URL resolver.

Every admin URL pattern that takes an id is sent ids that name no possible row — `²` (isdigit
but not int), `٣` (int() reads it as 3), 20 digits (an OverflowError on SQLite), `-1`, `0x1`,
`1e3` — as an operator, as staff outside the Operators group and as a superuser, by GET and
POST. Each must answer exactly as the same page answers for `0`, an id no row can have (404 for
anyone allowed past the sign-in): never a 5xx, never the row a lenient `int()` would have
found.

Then every form and every filter link the admin renders (crawled from each page the resolver
lists, with real rows behind it) is submitted with each hostile id in each field that carries
an id (selects, `*_id` fields, the action checkboxes): never a 5xx. A new admin page, form or
filter is attacked without editing this file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.test import Client
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve

from accounts import services as account_services
from accounts.models import SecurityEvent, User
from accounts.security import security_event_record
from escalations.models import SavedReply
from integrations.delivery import webhook_outbox_sweep
from integrations.models import WebhookEndpoint
from messaging.services import message_send
from tests.factories import EscalationFactory, OperatorFactory, SuperuserFactory, UserFactory
from tests.logins import signed_in

pytestmark = pytest.mark.django_db

HOSTILE_IDS = ["²", "٣", "12345678901234567890", "-1", "0x1", "1e3"]
MISSING = "0"


# --- The admin's URL patterns, from the resolver ------------------------------------------------


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


ADMIN_ROUTES = [
    (route, pattern)
    for route, pattern in _walk(get_resolver().url_patterns)
    if route.startswith("admin/") and not route.startswith("admin/^") and "(?P" not in route
]
_ARGUMENT = re.compile(r"<(?:(\w+):)?(\w+)>")


def _id_arguments(route: str) -> list[str]:
    return [name for _converter, name in _ARGUMENT.findall(route) if name.endswith("id")]


ID_ROUTES = [(route, pattern) for route, pattern in ADMIN_ROUTES if _id_arguments(route)]


def test_the_resolver_walk_finds_the_admin_pages() -> None:
    """The walk sees Django's model pages and Parley's own (a broken walk would test nothing)."""
    routes = {route for route, _ in ID_ROUTES}
    assert "admin/escalations/escalation/<path:object_id>/change/" in routes
    assert "admin/escalations/escalation/<int:object_id>/assign/" in routes
    assert "admin/messaging/conversation/<path:object_id>/change/" in routes
    assert "admin/accounts/user/<id>/password/" in routes
    assert "admin/r/<path:content_type_id>/<path:object_id>/" in routes
    assert len(ID_ROUTES) >= 50


def _model_of(pattern: URLPattern) -> type[models.Model] | None:
    owner = getattr(pattern.callback, "model_admin", None)
    view = pattern.callback
    while owner is None and view is not None:
        owner = getattr(view, "__self__", None)
        view = getattr(view, "__wrapped__", None)
    return getattr(owner, "model", None)


# --- Rows behind every admin model, written by the real services ----------------------------------


@pytest.fixture
def admin_rows(settings: Any) -> dict[str, User]:
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True
    customer = UserFactory(username="carol")
    operator = OperatorFactory(username="otto")
    superuser = SuperuserFactory(username="sue")
    plain_staff = UserFactory(username="stan", is_staff=True)
    WebhookEndpoint.objects.create(
        url="http://127.0.0.1:9/hook",
        events=["conversation.created", "message.created"],
        secret="whsec_c2VjcmV0c2VjcmV0c2VjcmV0",
    )
    conversation_id = message_send(
        customer=customer, conversation_id=None, text="hello"
    ).conversation_id
    EscalationFactory(conversation__customer=customer)
    webhook_outbox_sweep()  # deliveries and their queued tasks
    pair = account_services.token_pair_issue(user=customer, requested_scopes=None)
    account_services.token_refresh(raw_refresh=pair.refresh_token)  # an outstanding + blacklisted
    account_services.api_key_create(
        actor=superuser,
        name="k",
        owner_id=customer.pk,
        scopes=["conversations:read"],
        expires_at=None,
    )
    security_event_record(kind=SecurityEvent.Kind.AUTH_FAILED, user=customer, detail={})
    SavedReply.objects.create(title="Hi", body="Hello there", created_by=operator)
    Group.objects.get_or_create(name="Auditors")
    assert conversation_id
    return {"operator": operator, "staff": plain_staff, "superuser": superuser}


def _client(user: User) -> Client:
    client = signed_in(user)
    return client


def _real_value(name: str, model: type[models.Model] | None) -> str:
    if name == "content_type_id":
        return str(ContentType.objects.get_for_model(User).pk)
    if model is None:  # "view on site": the object of the content type above
        model = User
    pk = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
    return str(pk if pk is not None else 1)


def _url(route: str, values: dict[str, str]) -> str:
    return "/" + _ARGUMENT.sub(lambda m: quote(values[m.group(2)], safe=""), route)


def _outcome(response: Any, sent_id: str) -> tuple[int, str]:
    """Where a request ends up (redirects followed): the status and the last URL, with the id
    that was sent written as {id} (Django's `<id>/` → `<id>/change/` redirect echoes it)."""
    chain = getattr(response, "redirect_chain", [])
    last = chain[-1][0] if chain else ""
    return response.status_code, last.replace(f"/{quote(sent_id, safe='')}/", "/{id}/")


def _same_page(url: str, route: str) -> bool:
    try:
        return bool(resolve(urlsplit(url).path).route == route)
    except Resolver404:
        return False


# --- Every id argument of every admin URL ------------------------------------------------------


@pytest.mark.parametrize(("route", "pattern"), [pytest.param(r, p, id=r) for r, p in ID_ROUTES])
def test_hostile_ids_in_admin_urls_answer_like_a_missing_row(
    route: str, pattern: URLPattern, admin_rows: dict[str, User]
) -> None:
    model = _model_of(pattern)
    for role, user in admin_rows.items():
        client = _client(user)
        for attacked in _id_arguments(route):
            values = {name: _real_value(name, model) for name in _id_arguments(route)}
            missing = {**values, attacked: MISSING}
            for method in ("get", "post"):
                send = getattr(client, method)
                expected = _outcome(send(_url(route, missing), follow=True), MISSING)
                assert expected[0] < 500, (role, method, route)
                for hostile in HOSTILE_IDS:
                    response = send(_url(route, {**values, attacked: hostile}), follow=True)
                    assert response.status_code < 500, (role, method, route, attacked, hostile)
                    if not _same_page(_url(route, {**values, attacked: hostile}), route):
                        continue  # not this page: the path converter's slashes took it elsewhere
                    if response.status_code == 404 and expected[0] == 404:
                        continue  # "no such page" from the resolver or the view: the same
                    assert _outcome(response, hostile) == expected, (
                        role,
                        method,
                        attacked,
                        hostile,
                    )


# --- Every form and filter the admin renders ---------------------------------------------------


class _Forms(HTMLParser):
    """The forms of a page (action, method, fields with their default values) and its links."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.links: list[str] = []
        self._select: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(
                {
                    "action": a.get("action", ""),
                    "method": a.get("method", "get").lower(),
                    "fields": [],
                }
            )
        elif tag == "a" and "?" in a.get("href", ""):
            self.links.append(a["href"])
        elif not self.forms or "name" not in a:
            if tag == "option" and self._select is not None:
                self._option(a)
            return
        elif tag in ("input", "textarea"):
            kind = a.get("type", "text")
            if (
                kind in ("checkbox", "radio")
                and "checked" not in a
                and a["name"] != "_selected_action"
            ):
                return
            self.forms[-1]["fields"].append(
                {"name": a["name"], "value": a.get("value", ""), "kind": kind}
            )
        elif tag == "select":
            self._select = {"name": a["name"], "value": None, "kind": "select"}
            self.forms[-1]["fields"].append(self._select)
        elif tag == "option" and self._select is not None:
            self._option(a)

    def _option(self, a: dict[str, str]) -> None:
        assert self._select is not None
        value = a.get("value", "")
        if "selected" in a or (self._select["value"] in (None, "") and value):
            self._select["value"] = value

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def _carries_an_id(field: dict[str, Any]) -> bool:
    name = field["name"]
    return (
        field["kind"] == "select"
        or name == "_selected_action"
        or name.endswith("id")
        or (field["kind"] == "hidden" and re.fullmatch("[0-9]+", str(field["value"])) is not None)
    )


def _pages(admin_rows: dict[str, User]) -> list[str]:
    pages = []
    for route, pattern in ADMIN_ROUTES:
        if "logout" in route or "password_change" in route:
            continue
        names = [name for _c, name in _ARGUMENT.findall(route)]
        if any(not name.endswith("id") for name in names):
            continue
        model = _model_of(pattern)
        pages.append(_url(route, {name: _real_value(name, model) for name in names}))
    return pages


def test_hostile_ids_in_every_admin_form_and_filter(admin_rows: dict[str, User]) -> None:
    pages = _pages(admin_rows)
    attacked_fields: set[str] = set()
    for role in ("operator", "superuser"):
        client = _client(admin_rows[role])
        for page in pages:
            response = client.get(page)
            assert response.status_code < 500, (role, page)
            if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
                continue
            parsed = _Forms()
            parsed.feed(response.content.decode())
            for form in parsed.forms:
                action = urljoin(page, form["action"] or page)
                fields = [f for f in form["fields"] if f["name"] != "csrfmiddlewaretoken"]
                defaults = [(f["name"], f["value"] or "") for f in fields if f["value"] is not None]
                for field in filter(_carries_an_id, fields):
                    attacked_fields.add(field["name"])
                    for hostile in HOSTILE_IDS:
                        data = [(n, hostile if n == field["name"] else v) for n, v in defaults]
                        if field["name"] not in dict(data):
                            data.append((field["name"], hostile))
                        if form["method"] == "post":
                            answer = client.post(
                                action,
                                urlencode(data),
                                content_type="application/x-www-form-urlencoded",
                            )
                        else:
                            answer = client.get(f"{urlsplit(action).path}?{urlencode(data)}")
                        assert answer.status_code < 500, (role, page, field["name"], hostile)
            for link in parsed.links:
                target = urljoin(page, link)
                params = parse_qsl(urlsplit(target).query, keep_blank_values=True)
                for index, (name, _value) in enumerate(params):
                    if "id" not in name:
                        continue
                    attacked_fields.add(name)
                    for hostile in HOSTILE_IDS:
                        query = urlencode([*params[:index], (name, hostile), *params[index + 1 :]])
                        answer = client.get(f"{urlsplit(target).path}?{query}")
                        assert answer.status_code < 500, (role, target, name, hostile)
    # The crawl reached the forms that take ids (a crawl that found none would prove nothing).
    assert {
        "operator_id",
        "_selected_action",
        "action",
        "owner",
        "groups",
        "assigned_to__id__exact",
    } <= attacked_fields


def test_the_pages_reported_broken_answer_404_and_the_assign_form_refuses_cleanly(
    admin_rows: dict[str, User],
) -> None:
    """The cases found by hand: the escalation and conversation pages for `²` and a 20-digit
    id (a ValueError, and an OverflowError on SQLite), and `²` in the assign form's select."""
    from escalations.models import Escalation

    client = _client(admin_rows["operator"])
    for page in (
        "/admin/escalations/escalation/%C2%B2/change/",
        "/admin/messaging/conversation/%C2%B2/change/",
        "/admin/messaging/conversation/12345678901234567890/change/",
        "/admin/escalations/escalation/12345678901234567890/assign/",
    ):
        assert client.get(page).status_code in (404, 405), page
    escalation = Escalation.objects.get()
    before = (escalation.status, escalation.assigned_to_id)

    response = client.post(
        f"/admin/escalations/escalation/{escalation.pk}/assign/",
        {"operator_id": "²"},
        follow=True,
    )

    assert response.status_code == 200
    assert "Choose a colleague from the list." in response.content.decode()
    escalation.refresh_from_db()
    assert (escalation.status, escalation.assigned_to_id) == before

"""Customers' data: export exactly the caller's data; erase a customer from every table."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.apps import apps
from django.db import models
from django.test import Client
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts import services as account_services
from accounts.data_rights import user_erase
from accounts.models import ApiKey, RevokedAccessToken, SecurityEvent, User
from escalations import services as escalation_services
from escalations.inbox import note_add, rating_create
from escalations.models import Escalation
from integrations import services as integration_services
from integrations.delivery import webhook_outbox_sweep
from integrations.models import WebhookDelivery, WebhookEvent
from messaging.models import Conversation, IdempotencyRecord, Message
from messaging.realtime import conversation_group
from messaging.retention import conversations_prune_expired
from tests.factories import DEFAULT_PASSWORD
from tests.logins import signed_in
from tests.messages import sent_directly
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db

HUMAN = "I want to talk to a human agent please"


def _escalated_and_answered(customer: User, operator: User) -> int:
    conversation_id = sent_directly(customer, HUMAN)["conversation_id"]
    escalation_services.escalation_reply(
        conversation_id=conversation_id, actor=operator, text="An operator here."
    )
    return int(conversation_id)


# --- Export -----------------------------------------------------------------------------------


def test_export_holds_exactly_the_callers_data(
    customer: User,
    other_customer: User,
    operator: User,
    client_for: Callable[..., Client],
) -> None:
    first = _escalated_and_answered(customer, operator)
    note_add(conversation_id=first, actor=operator, text="internal: refund approved by finance")
    escalation = escalation_services.escalation_resolve(
        conversation_id=first, actor=operator, notes="done"
    )
    rating_create(customer=customer, conversation_id=first, score=4, comment="quick")
    second = sent_directly(customer, "hello there")["conversation_id"]
    sent_directly(other_customer, "secret of bob")
    account_services.api_key_create(
        actor=operator, name="mine", owner_id=customer.pk, scopes=["conversations:read"],
        expires_at=None,
    )  # fmt: skip

    response = client_for(customer).get("/api/v1/auth/me/export")
    assert response.status_code == 200
    export = response.json()
    assert set(export) == {"profile", "api_keys", "conversations", "ratings"}
    assert export["profile"]["id"] == customer.pk
    assert export["profile"]["username"] == "alice"
    assert export["profile"]["email"] == customer.email
    assert [c["id"] for c in export["conversations"]] == [first, second]
    for conversation in export["conversations"]:
        history = client_for(customer).get(
            f"/api/v1/conversations/{conversation['id']}/history?limit=1000"
        )
        assert conversation["messages"] == history.json()["messages"]
    roles = {m["role"] for m in export["conversations"][0]["messages"]}
    assert roles == {"customer", "agent", "system", "operator"}
    assert "secret of bob" not in response.content.decode()
    assert [k["name"] for k in export["api_keys"]] == ["mine"]
    assert "key_hash" not in export["api_keys"][0]
    assert [
        (r["conversation_id"], r["escalation_id"], r["score"], r["comment"])
        for r in export["ratings"]
    ] == [(first, escalation.pk, 4, "quick")]
    # Internal notes are staff-only: never in the customer's export.
    assert "refund approved by finance" not in response.content.decode()


def test_export_of_a_new_account_is_empty(
    other_customer: User, client_for: Callable[..., Client]
) -> None:
    sent_directly(other_customer, "hello")
    fresh = User.objects.create_user(username="dora", password=DEFAULT_PASSWORD)
    export = client_for(fresh).get("/api/v1/auth/me/export").json()
    assert (export["conversations"], export["api_keys"], export["ratings"]) == ([], [], [])


def test_export_needs_conversations_read(customer: User, client_for: Callable[..., Client]) -> None:
    assert Client().get("/api/v1/auth/me/export").status_code == 401
    limited = client_for(customer, {"messages:write"})
    assert limited.get("/api/v1/auth/me/export").status_code == 403


# --- Self-service erasure -----------------------------------------------------------------------


def _credentials(user: User) -> dict[str, str]:
    pair = account_services.token_pair_issue(user=user, requested_scopes=None)
    _key, raw = account_services.api_key_create(
        actor=user, name="k", owner_id=user.pk, scopes=["conversations:read"], expires_at=None
    )
    return {"access": pair.access_token, "refresh": pair.refresh_token, "api_key": raw}


def test_delete_me_erases_and_every_credential_stops_working(customer: User) -> None:
    sent_directly(customer, "hello")
    creds = _credentials(customer)
    bearer = Client(headers={"Authorization": f"Bearer {creds['access']}"})
    assert bearer.get("/api/v1/conversations").status_code == 200
    by_key = Client(headers={"X-API-Key": creds["api_key"]})
    assert by_key.get("/api/v1/conversations").status_code == 200

    response = bearer.delete(
        "/api/v1/auth/me", {"password": DEFAULT_PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 204
    assert not User.objects.filter(username="alice").exists()
    assert bearer.get("/api/v1/auth/me").status_code == 401
    assert by_key.get("/api/v1/conversations").status_code == 401
    refreshed = Client().post(
        "/api/v1/auth/refresh", {"refresh_token": creds["refresh"]}, "application/json"
    )
    assert refreshed.status_code == 401
    event = SecurityEvent.objects.get(kind="account_erased")
    assert event.detail["self_service"] is True


def test_delete_me_with_a_wrong_password_changes_nothing(
    customer: User, customer_client: Client
) -> None:
    sent_directly(customer, "hello")
    response = customer_client.delete(
        "/api/v1/auth/me", {"password": "not-it"}, content_type="application/json"
    )
    assert response.status_code == 403
    assert User.objects.filter(pk=customer.pk).exists()
    assert Conversation.objects.filter(customer=customer).count() == 1
    assert SecurityEvent.objects.filter(kind="login_failed", user=customer).count() == 1
    assert not SecurityEvent.objects.filter(kind="account_erased").exists()


def test_delete_me_is_rate_limited_like_sign_in(
    settings: Any, customer: User, customer_client: Client
) -> None:
    settings.RATE_LIMIT_LOGIN = "2/m"
    statuses = [
        customer_client.delete(
            "/api/v1/auth/me", {"password": "guess"}, content_type="application/json"
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [403, 403, 429]
    # Even the right password waits for the window now.
    right = customer_client.delete(
        "/api/v1/auth/me", {"password": DEFAULT_PASSWORD}, content_type="application/json"
    )
    assert right.status_code == 429
    assert User.objects.filter(pk=customer.pk).exists()


@pytest.mark.parametrize("body", [{}, {"password": ""}, {"password": DEFAULT_PASSWORD, "extra": 1}])
def test_delete_me_validation(customer: User, customer_client: Client, body: Any) -> None:
    response = customer_client.delete("/api/v1/auth/me", body, content_type="application/json")
    assert response.status_code == 422
    assert User.objects.filter(pk=customer.pk).exists()


def test_staff_cannot_erase_themselves_here(
    operator: User, client_for: Callable[..., Client]
) -> None:
    response = client_for(operator).delete(
        "/api/v1/auth/me", {"password": DEFAULT_PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 409
    assert User.objects.filter(pk=operator.pk).exists()


def test_anonymous_cannot_delete_me() -> None:
    response = Client().delete("/api/v1/auth/me", {"password": "x"}, "application/json")
    assert response.status_code == 401


# --- Erasure leaves nothing behind ------------------------------------------------------------


def _user_foreign_keys() -> list[tuple[type[models.Model], models.Field]]:
    user_model = apps.get_model("accounts", "User")
    found = []
    for model in apps.get_models(include_auto_created=True):
        for field in model._meta.get_fields():
            if (
                isinstance(field, models.ForeignKey | models.OneToOneField)
                and field.related_model is user_model
            ):
                found.append((model, field))
    return found


def test_erasure_leaves_no_row_referencing_the_customer(
    settings: Any,
    customer: User,
    other_customer: User,
    operator: User,
    superuser: User,
    client_for: Callable[..., Client],
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True
    integration_services.webhook_endpoint_create(
        actor=superuser, url="http://127.0.0.1:9/hook", events=["message.created"]
    )
    conversation_id = _escalated_and_answered(customer, operator)
    sent_directly(customer, "again", conversation_id=conversation_id, key="idem-1")
    sent_directly(other_customer, "bob's own")
    creds = _credentials(customer)
    Client(headers={"Authorization": f"Bearer {creds['access']}"}).post("/api/v1/auth/revoke")
    client_for(customer).get(f"/api/v1/customers/{other_customer.pk}/conversations")  # IDOR
    webhook_outbox_sweep()

    uid = customer.pk
    fks = _user_foreign_keys()
    names = {f"{m._meta.label}.{f.name}" for m, f in fks}
    # The walk covers the tables that matter (a model added later is walked too).
    assert {
        "messaging.Conversation.customer",
        "messaging.IdempotencyRecord.user",
        "accounts.ApiKey.owner",
        "accounts.RevokedAccessToken.user",
        "accounts.SecurityEvent.user",
        "token_blacklist.OutstandingToken.user",
        "integrations.WebhookEvent.customer",
    } <= names
    assert sum(m._default_manager.filter(**{f.name: uid}).count() for m, f in fks) > 10
    assert RevokedAccessToken.objects.filter(user_id=uid).exists()
    assert IdempotencyRecord.objects.filter(user_id=uid).exists()
    assert WebhookDelivery.objects.filter(event__customer_id=uid).exists()
    events_about_them = SecurityEvent.objects.filter(user_id=uid).count()
    assert events_about_them >= 1
    other_state = (
        Conversation.objects.filter(customer=other_customer).count(),
        Message.objects.filter(conversation__customer=other_customer).count(),
        WebhookEvent.objects.filter(customer=other_customer).count(),
    )
    security_rows = SecurityEvent.objects.count()

    assert client_for(superuser).delete(f"/api/v1/customers/{uid}").status_code == 204

    for model, field in fks:
        assert not model._default_manager.filter(**{field.name: uid}).exists(), (
            f"{model._meta.label}.{field.name} still references the erased user"
        )
    assert not Conversation.objects.filter(pk=conversation_id).exists()
    assert not Message.objects.filter(conversation_id=conversation_id).exists()
    assert not Escalation.objects.filter(conversation_id=conversation_id).exists()
    assert not WebhookEvent.objects.filter(payload__customer_id=uid).exists()
    assert not WebhookDelivery.objects.filter(event__payload__customer_id=uid).exists()
    assert not ApiKey.objects.filter(prefix=creds["api_key"].split("_")[1]).exists()
    assert not OutstandingToken.objects.filter(user__isnull=True).exists()
    # Security events keep their rows (detached), plus one for the erasure itself.
    assert SecurityEvent.objects.count() == security_rows + 1
    # Nobody else lost anything.
    assert other_state == (
        Conversation.objects.filter(customer=other_customer).count(),
        Message.objects.filter(conversation__customer=other_customer).count(),
        WebhookEvent.objects.filter(customer=other_customer).count(),
    )
    assert User.objects.filter(pk__in=[other_customer.pk, operator.pk]).count() == 2


def test_erasure_drops_pending_webhooks_for_the_customer(
    customer: User,
    other_customer: User,
    superuser: User,
    receiver: Receiver,
    endpoint_for: Callable[..., Any],
    drain: Any,
) -> None:
    endpoint_for(receiver.url(), events=("conversation.created",))
    sent_directly(customer, "hello")
    sent_directly(other_customer, "hello")
    webhook_outbox_sweep()
    assert WebhookDelivery.objects.filter(status="pending").count() == 2
    user_erase(user=customer, actor=superuser)
    drain()
    assert [e["data"]["customer_id"] for e in receiver.events()] == [other_customer.pk]


@pytest.mark.django_db(transaction=True)
def test_erasure_disconnects_socket_subscribers(
    customer: User, other_customer: User, superuser: User
) -> None:
    """Every conversation group of the customer hears `conversation.erased` after the commit
    (the conversation consumer closes on it); other customers' groups hear nothing."""
    mine = [
        sent_directly(customer, "one")["conversation_id"],
        sent_directly(customer, "two")["conversation_id"],
    ]
    theirs = sent_directly(other_customer, "three")["conversation_id"]

    async def scenario() -> tuple[list[Any], bool]:
        layer = get_channel_layer()
        channels = {}
        for conversation_id in [*mine, theirs]:
            channel = await layer.new_channel()
            await layer.group_add(conversation_group(conversation_id), channel)
            channels[conversation_id] = channel
        await sync_to_async(user_erase)(user=customer, actor=superuser)
        received = [await asyncio.wait_for(layer.receive(channels[cid]), timeout=5) for cid in mine]
        try:
            await asyncio.wait_for(layer.receive(channels[theirs]), timeout=0.5)
            heard_other = True
        except TimeoutError:
            heard_other = False
        for conversation_id, channel in channels.items():
            await layer.group_discard(conversation_group(conversation_id), channel)
        return received, heard_other

    received, heard_other = async_to_sync(scenario)()
    assert [event["type"] for event in received] == ["conversation.erased"] * 2
    assert heard_other is False


# --- The admin's delete is the same erasure ----------------------------------------------------


def _erasure_events(uid: int) -> list[SecurityEvent]:
    return [
        e
        for e in SecurityEvent.objects.filter(kind=SecurityEvent.Kind.ACCOUNT_ERASED)
        if e.detail.get("erased_user_id") == uid
    ]


def test_admin_delete_of_a_customer_is_an_erasure(
    customer: User, other_customer: User, superuser: User
) -> None:
    conversation_id = sent_directly(customer, "hello")["conversation_id"]
    _credentials(customer)
    theirs = sent_directly(other_customer, "mine")["conversation_id"]
    client = signed_in(superuser)

    response = client.post(f"/admin/accounts/user/{customer.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not User.objects.filter(pk=customer.pk).exists()
    assert not Conversation.objects.filter(pk=conversation_id).exists()
    assert not OutstandingToken.objects.filter(user__isnull=True).exists()
    [event] = _erasure_events(customer.pk)
    assert event.detail["actor_id"] == superuser.pk
    assert event.detail["self_service"] is False
    assert Conversation.objects.filter(pk=theirs).exists()


def test_admin_bulk_delete_erases_customers_and_removes_staff_plainly(
    customer: User, other_customer: User, operator: User, superuser: User
) -> None:
    sent_directly(customer, "hello")
    client = signed_in(superuser)

    response = client.post(
        "/admin/accounts/user/",
        {
            "action": "delete_selected",
            "_selected_action": [customer.pk, operator.pk],
            "post": "yes",
        },
    )

    assert response.status_code == 302
    assert not User.objects.filter(pk__in=[customer.pk, operator.pk]).exists()
    assert len(_erasure_events(customer.pk)) == 1
    assert _erasure_events(operator.pk) == []  # an operator is removed, not "erased"
    assert User.objects.filter(pk=other_customer.pk).exists()


# --- Retention ---------------------------------------------------------------------------------


def test_prune_expired_deletes_conversations_past_retention(settings: Any, customer: User) -> None:
    old = sent_directly(customer, "old")["conversation_id"]
    recent = sent_directly(customer, "recent")["conversation_id"]
    now = timezone.now()
    Conversation.objects.filter(pk=old).update(updated_at=now - timedelta(days=31))
    Conversation.objects.filter(pk=recent).update(updated_at=now - timedelta(days=29))

    settings.MESSAGE_RETENTION_DAYS = None
    assert conversations_prune_expired(now=now) == 0
    assert Conversation.objects.count() == 2

    settings.MESSAGE_RETENTION_DAYS = 30
    assert conversations_prune_expired(now=now) == 1
    assert list(Conversation.objects.values_list("pk", flat=True)) == [recent]
    assert not Message.objects.filter(conversation_id=old).exists()
    assert Message.objects.filter(conversation_id=recent).count() == 2


def test_delete_me_with_the_right_password_spends_no_sign_in_budget(
    settings: Any, customer: User, other_customer: User, customer_client: Client
) -> None:
    """The password is checked before the sign-in budget is touched, and only a wrong one is
    counted: erasing with the right password leaves the IP's budget whole for the next sign-in
    from the same address."""
    settings.RATE_LIMIT_LOGIN = "1/m"
    response = customer_client.delete(
        "/api/v1/auth/me", {"password": DEFAULT_PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 204
    sign_in = Client().post(
        "/api/v1/auth/token",
        {"username": other_customer.username, "password": DEFAULT_PASSWORD},
        content_type="application/json",
    )
    assert sign_in.status_code == 200


def test_delete_me_wrong_passwords_spend_the_accounts_sign_in_budget(
    settings: Any, customer: User, customer_client: Client
) -> None:
    settings.RATE_LIMIT_LOGIN = "2/m"
    for _ in range(2):
        wrong = customer_client.delete(
            "/api/v1/auth/me", {"password": "guess"}, content_type="application/json"
        )
        assert wrong.status_code == 403
    sign_in = Client().post(
        "/api/v1/auth/token",
        {"username": customer.username, "password": DEFAULT_PASSWORD},
        content_type="application/json",
        REMOTE_ADDR="10.9.8.7",  # another address: the account's own budget is what is spent
    )
    assert sign_in.status_code == 429
    assert sign_in["Retry-After"]


def test_erasure_scrubs_the_customer_from_the_security_events_it_keeps(
    customer: User, other_customer: User, superuser: User, client_for: Callable[..., Client]
) -> None:
    """The rows stay (the record of what happened), but nothing in them names the erased
    customer: no user link, no username or email in `detail` — the failed sign-ins someone made
    with their name (any spelling) included — and no id of theirs."""
    User.objects.filter(pk=customer.pk).update(email="alice@example.com")
    customer.refresh_from_db()
    for spelling in ("alice", "ALICE", "Ａｌｉｃｅ"):  # fullwidth: the same account
        Client().post(
            "/api/v1/auth/token",
            {"username": spelling, "password": "wrong-guess"},
            content_type="application/json",
        )
    client_for(customer).get(f"/api/v1/customers/{other_customer.pk}/conversations")  # theirs
    client_for(other_customer).get(f"/api/v1/customers/{customer.pk}/conversations")  # at them
    uid = customer.pk
    names = {"alice", "alice@example.com"}

    def mentions(event: SecurityEvent) -> bool:
        text = json.dumps(event.detail).casefold()
        return (
            event.user_id == uid
            or any(name in text for name in names)
            or uid
            in [v for k, v in event.detail.items() if k.endswith("_id") and k != "erased_user_id"]
        )

    before = SecurityEvent.objects.count()
    assert sum(mentions(e) for e in SecurityEvent.objects.all()) >= 5

    assert client_for(superuser).delete(f"/api/v1/customers/{uid}").status_code == 204

    assert SecurityEvent.objects.count() == before + 1  # kept, plus the erasure's own
    assert [e for e in SecurityEvent.objects.all() if mentions(e)] == []
    probes = SecurityEvent.objects.filter(kind="idor_attempt").order_by("id")
    assert [e.detail for e in probes] == [
        {"customer_id": other_customer.pk, "read": True},  # the erased customer's own probe
        {"customer_id": None, "read": True},  # the probe aimed at them
    ]
    assert [probe.user_id for probe in probes] == [None, other_customer.pk]
    assert set(
        SecurityEvent.objects.filter(kind="login_failed").values_list("detail__username", flat=True)
    ) == {"(erased)"}

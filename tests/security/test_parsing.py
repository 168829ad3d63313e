"""The request-parsing layer (core/parsing.py) and the input rules behind it: each limit at
its edge, and Django's lazy bad-request exceptions as 400s rather than 500s."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.test import Client

from accounts.models import ApiKey, SecurityEvent, User
from core.ids import MAX_ID
from core.parsing import MAX_FIELDS, MAX_JSON_DEPTH, MalformedRequest, json_loads
from core.text import clean_text, ensure_storable, unstorable_reason


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_json_at_the_depth_limit_parses() -> None:
    assert json_loads(nested(MAX_JSON_DEPTH)) == json.loads(nested(MAX_JSON_DEPTH))


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
def test_json_past_the_depth_limit_is_refused(depth: int) -> None:
    with pytest.raises(MalformedRequest, match="deeper than 32"):
        json_loads(nested(depth))


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"a": "[" * 500 + '\\"{' * 100})
    assert json_loads(text) == json.loads(text)


@pytest.mark.parametrize("raw", [b"\xff\xfe{", b'{"a": ', b"", b"\x00"])
def test_undecodable_json_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedRequest):
        json_loads(raw)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/auth/token", "/api/v1/auth/register"])
def test_deep_json_body_is_400(anonymous_client: Client, path: str) -> None:
    response = anonymous_client.post(path, nested(5000), content_type="application/json")

    assert response.status_code == 400
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_deep_optional_body_names_the_limit(superuser_client: Client) -> None:
    response = superuser_client.post(
        "/api/v1/auth/revoke", nested(MAX_JSON_DEPTH + 1), content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "JSON nested deeper than 32 levels"}


def _form(count: int) -> str:
    return "grant_type=password&username=alice&password=x&" + "&".join(
        f"f{i}=1" for i in range(count - 3)
    )


@pytest.mark.django_db
@pytest.mark.parametrize("count", [MAX_FIELDS + 1, 1200])
def test_form_with_too_many_fields_is_400(anonymous_client: Client, count: int) -> None:
    response = anonymous_client.post(
        "/api/v1/auth/token", _form(count), content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "More than 100 form or query fields"}


@pytest.mark.django_db
def test_form_at_the_field_limit_reaches_validation(anonymous_client: Client) -> None:
    response = anonymous_client.post(
        "/api/v1/auth/token", _form(MAX_FIELDS), content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 422  # unknown fields f0..f96: parsed, then refused by schema


@pytest.mark.django_db
@pytest.mark.parametrize("charset", ["latin-1", "utf-16", "nonsense"])
def test_form_body_in_another_charset_is_400(
    anonymous_client: Client, customer: User, charset: str
) -> None:
    response = anonymous_client.generic(
        "POST",
        "/api/v1/auth/token",
        b"grant_type=password&username=alic%E9&password=x",
        content_type=f"application/x-www-form-urlencoded; charset={charset}",
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "Form bodies must be UTF-8 encoded"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "username",
    [
        pytest.param(b"al%ED%A0%80ice", id="lone-high-surrogate"),
        pytest.param(b"%ED%BF%BF", id="lone-low-surrogate"),
        pytest.param(b"alic%E9", id="latin-1-byte"),
        pytest.param(b"%C3", id="truncated-sequence"),
        pytest.param(b"%F8%88%80%80%80", id="five-byte-sequence"),
    ],
)
def test_a_form_field_that_is_not_utf8_is_400_not_a_failed_sign_in(
    anonymous_client: Client, customer: User, username: bytes
) -> None:
    """Django would decode the field to U+FFFD and the sign-in would fail as a wrong password
    (401, counted and recorded); the input is malformed: 400, nothing counted."""
    response = anonymous_client.generic(
        "POST",
        "/api/v1/auth/token",
        b"grant_type=password&username=" + username + b"&password=x",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "Form bodies must be UTF-8 encoded"}
    assert not SecurityEvent.objects.filter(kind="login_failed").exists()


@pytest.mark.django_db
def test_a_multipart_field_that_is_not_utf8_is_400(superuser_client: Client) -> None:
    body = (
        b'--x\r\nContent-Disposition: form-data; name="refresh_token"\r\n\r\n'
        b"a\xed\xa0\x80b\r\n--x--\r\n"
    )
    response = superuser_client.generic(
        "POST", "/api/v1/auth/revoke", body, content_type="multipart/form-data; boundary=x"
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "Form bodies must be UTF-8 encoded"}


@pytest.mark.django_db
def test_a_replacement_character_the_client_sent_is_text_like_any_other(
    anonymous_client: Client, customer: User, superuser_client: Client
) -> None:
    """U+FFFD spelled out in UTF-8 (or percent-encoded) is ordinary text: only bytes that are
    not UTF-8 are refused."""
    form = anonymous_client.generic(
        "POST",
        "/api/v1/auth/token",
        b"grant_type=password&username=a%EF%BF%BDb&password=x",
        content_type="application/x-www-form-urlencoded",
    )
    assert form.status_code == 401  # a name no account has: a failed sign-in
    multipart = superuser_client.generic(
        "POST",
        "/api/v1/auth/revoke",
        b'--x\r\nContent-Disposition: form-data; name="refresh_token"\r\n\r\n'
        + "a\ufffdb".encode()
        + b"\r\n--x--\r\n",
        content_type="multipart/form-data; boundary=x",
    )
    assert multipart.status_code == 204  # an unknown refresh token is ignored (RFC 7009)


@pytest.mark.django_db
def test_the_admin_login_refuses_a_form_that_is_not_utf8(customer: User) -> None:
    response = Client().generic(
        "POST",
        "/admin/login/",
        b"username=al%ED%A0%80ice&password=x",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert not SecurityEvent.objects.filter(kind="login_failed").exists()


@pytest.mark.django_db
def test_explicit_utf8_form_is_accepted(anonymous_client: Client) -> None:
    response = anonymous_client.generic(
        "POST",
        "/api/v1/auth/token",
        b"grant_type=password&username=nobody&password=x",
        content_type="application/x-www-form-urlencoded; charset=UTF-8",
    )

    assert response.status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("count", [MAX_FIELDS + 1, 1200])
@pytest.mark.parametrize("path", ["/api/v1/conversations", "/api/v1/api-keys"])
def test_query_with_too_many_fields_is_400(superuser_client: Client, path: str, count: int) -> None:
    query = "&".join(f"q{i}=1" for i in range(count))

    response = superuser_client.get(f"{path}?{query}")

    assert response.status_code == 400
    assert response.json() == {"detail": "More than 100 form or query fields"}


@pytest.mark.django_db
def test_query_at_the_field_limit_is_served(superuser_client: Client) -> None:
    query = "&".join(f"q{i}=1" for i in range(MAX_FIELDS))

    assert superuser_client.get(f"/api/v1/api-keys?{query}").status_code == 200


# --- Text ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a\x00b", "control characters"),
        ("a\x1bb", "control characters"),
        ("é\x85", "control characters"),
        ("a\ud800", "lone surrogates"),
        ("é\udfff", "lone surrogates"),
        ("a\U000e0080", "unassigned characters"),
        ("a\uffff", "unassigned characters"),
    ],
)
def test_unstorable_text_is_named(text: str, reason: str) -> None:
    assert unstorable_reason(text) == reason
    with pytest.raises(ValueError, match=reason):
        ensure_storable(text)


@pytest.mark.parametrize("text", ["plain", "tab\tand\nnewline\r", "émoji 👩‍💻", "\ue000 private"])
def test_storable_text_passes_unchanged(text: str) -> None:
    assert ensure_storable(text) is text


def test_message_text_keeps_its_rules() -> None:
    assert clean_text("  hi\r\nthere ") == "hi\nthere"
    with pytest.raises(ValueError, match="lone surrogates"):
        clean_text("hi \ud83d")


@pytest.mark.django_db
def test_every_string_field_refuses_nul(superuser_client: Client, customer: User) -> None:
    body = {"name": "key\x00", "owner_id": customer.pk, "scopes": ["admin"]}

    response = superuser_client.post("/api/v1/api-keys", body, content_type="application/json")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "payload", "name"]
    assert ApiKey.objects.count() == 0


@pytest.mark.django_db
def test_idempotency_key_header_obeys_the_text_rule(
    customer_client: Client, customer: User
) -> None:
    response = customer_client.post(
        "/api/v1/messages/process",
        {"message": "hello", "customer_id": customer.pk},
        content_type="application/json",
        headers={"Idempotency-Key": "key\x01"},
    )

    assert response.status_code == 422
    assert customer.conversations.count() == 0


# --- Ids and cursors -----------------------------------------------------------------------


def _cursor(first: Any, last_id: Any = 1) -> str:
    return base64.urlsafe_b64encode(json.dumps([first, last_id]).encode()).decode().rstrip("=")


OUT_OF_RANGE_CURSORS = [
    _cursor("9999-12-31T23:59:59-23:59"),
    _cursor("0001-01-01T00:00:00+23:59"),
    _cursor("2026-01-01T00:00:00+23:59", MAX_ID + 1),
    _cursor("2026-01-01T00:00:00+00:00", -1),
    _cursor("2026-01-01T00:00:00+00:00", True),
    _cursor(["x"], 1),
    _cursor("2026-01-01T00:00:00"),
    "not base64 !",
    base64.urlsafe_b64encode(b"[" * 140).decode(),
]


@pytest.mark.django_db
@pytest.mark.parametrize("cursor", OUT_OF_RANGE_CURSORS)
@pytest.mark.parametrize(
    "path", ["/api/v1/conversations", "/api/v1/escalations", "/api/v1/api-keys"]
)
def test_cursor_that_names_no_position_is_400(
    superuser_client: Client, path: str, cursor: str
) -> None:
    response = superuser_client.get(path, {"cursor": cursor})

    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid cursor"}


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00"])
def test_cursor_at_the_edges_of_time_is_a_page(superuser_client: Client, value: str) -> None:
    response = superuser_client.get("/api/v1/api-keys", {"cursor": _cursor(value)})

    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("customer_id", [MAX_ID + 1, 2**64, -1, 0])
def test_customer_id_out_of_range_reads_nothing(superuser_client: Client, customer_id: int) -> None:
    response = superuser_client.get(f"/api/v1/customers/{customer_id}/conversations")

    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


@pytest.mark.django_db
@pytest.mark.parametrize("owner_id", [MAX_ID + 1, 0, -5])
def test_body_id_out_of_range_is_422(superuser_client: Client, owner_id: int) -> None:
    response = superuser_client.post(
        "/api/v1/api-keys",
        {"name": "k", "owner_id": owner_id, "scopes": ["admin"]},
        content_type="application/json",
    )

    assert response.status_code == 422
    assert ApiKey.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "first"),
    [
        ("use_count", "abc"),
        ("use_count", 2**64),
        ("use_count", True),
        ("name", 5),
        ("name", "a\x00"),
    ],
)
def test_cursor_values_must_fit_the_sort_field(field: str, first: Any) -> None:
    from core.pagination import InvalidCursor, keyset_page

    with pytest.raises(InvalidCursor):
        keyset_page(
            ApiKey.objects.all(), field=field, descending=True, cursor=_cursor(first), limit=5
        )


@pytest.mark.django_db
def test_integer_and_text_cursors_page_on(superuser: User) -> None:
    from core.pagination import keyset_page

    for field, first in (("use_count", 0), ("name", "m")):
        rows, _next = keyset_page(
            ApiKey.objects.all(), field=field, descending=True, cursor=_cursor(first), limit=5
        )
        assert rows == []

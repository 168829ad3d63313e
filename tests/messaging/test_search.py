"""GET /search: full-text search over message contents, on both databases (PostgreSQL's
tsvector + GIN, SQLite's FTS5), with ownership in the statement, escaped snippets, ranking,
paging and the refusals."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import Client

from accounts.models import SecurityEvent, User
from escalations.inbox import note_add
from messaging.models import Conversation, Message
from messaging.search import fts5_query, message_search, snippet_html
from tests.factories import ConversationFactory, MessageFactory, OperatorFactory
from tests.messages import sent

pytestmark = pytest.mark.django_db


def _search(client: Client, **params: Any) -> Any:
    return client.get(f"/api/v1/search?{urlencode(params)}")


def _message(owner: User, content: str, **kwargs: Any) -> Message:
    conversation = kwargs.pop("conversation", None) or ConversationFactory(customer=owner)
    return MessageFactory(conversation=conversation, content=content, **kwargs)


# --- Finding, ownership ----------------------------------------------------------------------


def test_customer_finds_own_message_with_exact_item(
    customer: User, customer_client: Client
) -> None:
    message = _message(customer, "I was charged twice for my refund request")

    response = _search(customer_client, q="refund")

    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    conversation = message.conversation
    assert body["items"] == [
        {
            "conversation_id": conversation.pk,
            "customer_id": customer.pk,
            "status": "active",
            "message_id": message.pk,
            "seq": message.seq,
            "snippet": body["items"][0]["snippet"],
            "created_at": body["items"][0]["created_at"],
        }
    ]
    assert "<mark>refund</mark>" in body["items"][0]["snippet"]
    assert body["items"][0]["snippet"].replace("<mark>", "").replace("</mark>", "") in (
        message.content
    )


def test_stemming_finds_other_forms(customer: User, customer_client: Client) -> None:
    _message(customer, "Refunds usually take three days")
    items = _search(customer_client, q="refund").json()["items"]
    assert len(items) == 1
    assert "<mark>Refunds</mark>" in items[0]["snippet"]


def test_customer_never_finds_another_customers_words(
    customer: User, other_customer: User, customer_client: Client, other_client: Client
) -> None:
    _message(other_customer, "my secret refund number is 4242")
    mine = _message(customer, "where is my refund")

    items = _search(customer_client, q="refund").json()["items"]

    assert [item["message_id"] for item in items] == [mine.pk]
    assert _search(customer_client, q="secret 4242").json()["items"] == []
    # The other customer finds their own.
    assert len(_search(other_client, q="secret").json()["items"]) == 1


def test_customer_naming_another_customer_is_403_and_logged(
    customer: User, other_customer: User, customer_client: Client
) -> None:
    _message(other_customer, "refund please")

    response = _search(customer_client, q="refund", customer_id=other_customer.pk)

    assert response.status_code == 403
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.IDOR_ATTEMPT).count() == 1


def test_customer_naming_themselves_is_allowed(customer: User, customer_client: Client) -> None:
    _message(customer, "refund please")
    response = _search(customer_client, q="refund", customer_id=customer.pk)
    assert response.status_code == 200
    assert len(response.json()["items"]) == 1


def test_staff_search_every_conversation_and_filter_by_customer(
    customer: User, other_customer: User, operator_client: Client
) -> None:
    first = _message(customer, "refund for alice")
    second = _message(other_customer, "refund for bob")

    every = _search(operator_client, q="refund").json()["items"]
    only_bob = _search(operator_client, q="refund", customer_id=other_customer.pk).json()["items"]

    assert {item["message_id"] for item in every} == {first.pk, second.pk}
    assert [item["message_id"] for item in only_bob] == [second.pk]


def test_status_filter_is_the_conversations(customer: User, customer_client: Client) -> None:
    active = _message(customer, "refund one")
    resolved = _message(
        customer,
        "refund two",
        conversation=ConversationFactory(customer=customer, status="resolved"),
    )
    found = _search(customer_client, q="refund", status="resolved").json()["items"]
    assert [item["message_id"] for item in found] == [resolved.pk]
    found = _search(customer_client, q="refund", status="active").json()["items"]
    assert [item["message_id"] for item in found] == [active.pk]


def test_roles_searched_and_system_notices_not(customer: User, customer_client: Client) -> None:
    conversation = ConversationFactory(customer=customer)
    found = [
        _message(customer, f"billing from the {role}", conversation=conversation, role=role)
        for role in ("customer", "agent", "operator")
    ]
    _message(customer, "billing notice", conversation=conversation, role="system")

    items = _search(customer_client, q="billing").json()["items"]

    assert {item["message_id"] for item in items} == {m.pk for m in found}


def test_internal_notes_are_never_found(
    customer: User, operator: User, customer_client: Client, operator_client: Client
) -> None:
    message = _message(customer, "hello there")
    note_add(
        conversation_id=message.conversation_id,
        actor=operator,
        text="customer is a known fraudster, zebracode",
    )
    assert _search(customer_client, q="zebracode").json()["items"] == []
    assert _search(operator_client, q="zebracode").json()["items"] == []
    assert _search(customer_client, q="fraudster").json()["items"] == []


def test_deleted_and_edited_messages_leave_the_index(
    customer: User, customer_client: Client
) -> None:
    kept = _message(customer, "refund kept")
    gone = _message(customer, "refund gone")
    edited = _message(customer, "refund edited")
    Conversation.objects.filter(pk=gone.conversation_id).delete()
    Message.objects.filter(pk=edited.pk).update(content="nothing to see")

    items = _search(customer_client, q="refund").json()["items"]

    assert [item["message_id"] for item in items] == [kept.pk]
    assert [i["message_id"] for i in _search(customer_client, q="nothing").json()["items"]] == [
        edited.pk
    ]


# --- Snippets ------------------------------------------------------------------------------


def test_snippet_escapes_everything_but_the_marks(customer: User, customer_client: Client) -> None:
    _message(customer, 'Refund <script>alert("x")</script> & <b>bold</b> refund')

    snippet = _search(customer_client, q="refund").json()["items"][0]["snippet"]

    assert "<script>" not in snippet
    assert "<b>" not in snippet
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in snippet
    assert "&amp; &lt;b&gt;bold&lt;/b&gt;" in snippet
    assert snippet.count("<mark>") == snippet.count("</mark>") == 2
    without_marks = snippet.replace("<mark>", "").replace("</mark>", "")
    assert "<" not in without_marks
    assert ">" not in without_marks


def test_words_in_angle_brackets_are_words(customer: User, customer_client: Client) -> None:
    """PostgreSQL's parser would drop "<parcel>" as an HTML tag; customers mean the word."""
    message = _message(customer, "Where is my <parcel>?")
    items = _search(customer_client, q="parcel").json()["items"]
    assert [item["message_id"] for item in items] == [message.pk]
    assert items[0]["snippet"] == "Where is my &lt;<mark>parcel</mark>&gt;?"


def test_a_long_message_gives_an_excerpt_around_the_match(
    customer: User, customer_client: Client
) -> None:
    words = [f"filler{n}" for n in range(300)]
    words[150] = "needle"
    _message(customer, " ".join(words))

    snippet = _search(customer_client, q="needle").json()["items"][0]["snippet"]

    assert "<mark>needle</mark>" in snippet
    assert len(snippet) < 400
    assert "filler0 " not in snippet


def test_snippet_html_turns_only_the_sentinels_into_marks() -> None:
    assert snippet_html("a \x01b\x02 <i>&\x03c\x04") == "a <mark>b</mark> &lt;i&gt;&amp;&lt;c&gt;"


# --- Ranking and paging ----------------------------------------------------------------------


def test_best_match_first(customer: User, customer_client: Client) -> None:
    weak = _message(
        customer,
        "I wrote about many things today: the weather, my cat, a parcel, and one refund.",
    )
    strong = _message(customer, "refund refund refund: where is my refund?")

    items = _search(customer_client, q="refund").json()["items"]

    assert [item["message_id"] for item in items] == [strong.pk, weak.pk]


def test_cursor_pages_through_every_hit_once_in_rank_order(
    customer: User, customer_client: Client
) -> None:
    conversation = ConversationFactory(customer=customer)
    for i in range(7):
        _message(customer, "parcel " * (i % 3 + 1) + f"number {i}", conversation=conversation)
    whole = [
        item["message_id"]
        for item in _search(customer_client, q="parcel", limit=100).json()["items"]
    ]

    paged, cursor = [], None
    for _ in range(10):
        params = {"q": "parcel", "limit": 3, **({"cursor": cursor} if cursor else {})}
        body = _search(customer_client, **params).json()
        paged += [item["message_id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert len(whole) == 7
    assert paged == whole


def test_newer_messages_rank_first_as_a_tier_and_pages_cross_it(
    customer: User,
    customer_client: Client,
    operator_client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from messaging import search

    monkeypatch.setattr(search, "RECENT_MESSAGES", 3)
    conversation = ConversationFactory(customer=customer)
    old_strong = _message(customer, "parcel parcel parcel parcel", conversation=conversation)
    old_weak = _message(customer, "a parcel among many other words here", conversation=conversation)
    recent = [
        _message(customer, "one parcel and more words than that", conversation=conversation),
        _message(customer, "parcel parcel", conversation=conversation),
        _message(customer, "unrelated", conversation=conversation),
    ]

    whole = [i["message_id"] for i in _search(operator_client, q="parcel").json()["items"]]
    first = _search(operator_client, q="parcel", limit=2).json()
    # A new message between pages does not move the boundary the first page fixed.
    _message(customer, "parcel parcel parcel parcel parcel", conversation=conversation)
    rest = _search(operator_client, q="parcel", limit=2, cursor=first["next_cursor"]).json()

    # The recent tier (the newest three messages) first, best match first within each tier.
    assert whole == [recent[1].pk, recent[0].pk, old_strong.pk, old_weak.pk]
    paged = [i["message_id"] for page in (first, rest) for i in page["items"]]
    assert paged == whole
    assert rest["next_cursor"] is None
    # Within one customer's conversations everything is ranked at once.
    own = [i["message_id"] for i in _search(customer_client, q="parcel").json()["items"]]
    assert own[:2] == [recent[-1].pk + 1, old_strong.pk]


# --- Refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '"unbalanced',
        "a AND",
        "OR",
        "NOT refund",
        "refund*",
        "NEAR(refund order, 2)",
        "content:refund",
        "^refund",
        "(((",
        "&|!:*()<->",
        "-",
        "--refund",
        "' OR 1=1 --",
        "\\",
        "😀 refund",
        "a" * 200,
    ],
)
def test_search_syntax_never_fails(customer: User, customer_client: Client, query: str) -> None:
    _message(customer, "refund for my order")
    response = _search(customer_client, q=query)
    assert response.status_code == 200, response.content
    assert isinstance(response.json()["items"], list)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({}, 422),
        ({"q": ""}, 422),
        ({"q": "   "}, 422),
        ({"q": "a" * 201}, 422),
        ({"q": "refund", "limit": 0}, 422),
        ({"q": "refund", "limit": 101}, 422),
        ({"q": "refund", "limit": "ten"}, 422),
        ({"q": "refund", "status": "open"}, 422),
        ({"q": "refund", "customer_id": 0}, 422),
        ({"q": "refund", "customer_id": 2**63}, 422),
        ({"q": "refund", "customer_id": "x"}, 422),
        ({"q": "refund\x00"}, 422),
        ({"q": "refund", "cursor": "not-a-cursor"}, 400),
        ({"q": "refund", "cursor": "WyJ4IiwgMV0"}, 400),  # ["x", 1]
        ({"q": "refund", "cursor": "WzAsIDEuMCwgMCwgMF0"}, 400),  # [0, 1.0, 0, 0]: id 0
        ({"q": "refund", "cursor": "WzIsIDEuMCwgNSwgMF0"}, 400),  # [2, 1.0, 5, 0]: no tier 2
        ({"q": "refund", "cursor": "WzAsIDFlKzIwLCA1LCAwXQ"}, 400),  # [0, 1e20, 5, 0]
        ({"q": "refund", "cursor": "WzAsIDEuMCwgNSwgMWUrMzBd"}, 400),  # boundary 1e30
    ],
)
def test_bad_parameters_are_refused(
    customer: User, customer_client: Client, params: dict[str, Any], status: int
) -> None:
    response = _search(customer_client, **params)
    assert response.status_code == status, response.content


def test_unauthenticated_is_401(anonymous_client: Client) -> None:
    assert _search(anonymous_client, q="refund").status_code == 401


def test_fts5_query_quotes_every_word() -> None:
    assert fts5_query('"my order" -cancel or bill') == '(("my order") OR ("bill")) NOT "cancel"'
    # An unbalanced quote is part of a word, quoted like the rest.
    assert fts5_query('NEAR(a "b') == '("NEAR(a" AND """b")'
    assert fts5_query("*** -x") is None


# --- The index is the database's: the writers did not change --------------------------------


def test_a_turn_through_the_fast_path_is_found(customer: User, customer_client: Client) -> None:
    first = sent(customer_client, customer, "How do I reset my password?")
    second = sent(
        customer_client,
        customer,
        "How do I reset my password? flamingo",
        first["conversation_id"],
    )

    items = _search(customer_client, q="flamingo").json()["items"]

    assert [item["message_id"] for item in items] == [second["metadata"]["customer_message_id"]]


def test_ranked_ties_and_many_operators(operator_client: Client) -> None:
    """Staff see messages of every customer, including other operators' replies."""
    colleague = OperatorFactory()
    conversation = ConversationFactory()
    reply = _message(
        conversation.customer,
        "refund approved",
        conversation=conversation,
        role="operator",
        author=colleague,
    )
    hits, cursor = message_search(q="approved", customer_id=None, status=None, limit=5)
    assert [hit.message_id for hit in hits] == [reply.pk]
    assert cursor is None
    assert connection.vendor in ("postgresql", "sqlite")

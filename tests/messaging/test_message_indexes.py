"""The message table's indexes, as migrated on this database: lookups by conversation go
through the (conversation, seq) unique index; no second index on conversation_id alone makes
every INSERT update one more B-tree (messaging migration 0003)."""

from __future__ import annotations

import pytest
from django.db import connection

from messaging.models import Message

pytestmark = pytest.mark.django_db


def _indexes() -> dict[str, tuple[tuple[str, ...], bool]]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Message._meta.db_table)
    return {
        name: (tuple(found["columns"]), bool(found["unique"]))
        for name, found in constraints.items()
        if found["index"] or found["unique"]
    }


def test_the_conversation_is_indexed_only_with_its_seq() -> None:
    indexes = _indexes()

    assert indexes["message_seq_unique"] == (("conversation_id", "seq"), True)
    assert [name for name, (columns, _) in indexes.items() if columns == ("conversation_id",)] == []


def test_the_author_index_stays_for_set_null_on_user_deletion() -> None:
    # Deleting a user sets author NULL on their messages: without this index, a scan of all.
    assert any(columns == ("author_id",) for columns, _ in _indexes().values())

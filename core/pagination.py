"""Keyset (cursor) pagination: pages cost the same at any depth, unlike OFFSET scans.

A cursor is the sort key of the last row served, base64-encoded. It is opaque to clients but
not secret: tampering with it only moves the position inside a queryset that is already
filtered to what the caller may see.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from django.db.models import Model, Q, QuerySet

from core.errors import ParleyError
from core.ids import MAX_ID, is_possible_id
from core.text import ensure_storable

M = TypeVar("M", bound=Model)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list and the cursor of the next (None on the last page). A list route
    returns it as it is: its page schema (`items`, `next_cursor`) reads both attributes. Not a
    tuple, which ninja would take for (status, body); it unpacks like one,
    `items, next_cursor = page`."""

    items: list[T]
    next_cursor: str | None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.items, self.next_cursor))


class InvalidCursor(ParleyError):
    status_code = 400
    default_detail = "Invalid cursor"


def _encode(values: list[Any]) -> str:
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


_INTEGER_FIELDS = {
    "AutoField",
    "BigAutoField",
    "BigIntegerField",
    "IntegerField",
    "PositiveBigIntegerField",
    "PositiveIntegerField",
    "PositiveSmallIntegerField",
    "SmallIntegerField",
}


def _decode(cursor: str, field_type: str) -> tuple[Any, int]:
    """The (sort value, id) a cursor names, always a value the database accepts: datetimes in
    UTC (an offset of ±23:59 in year 1 or 9999 leaves datetime's range once converted, and
    PostgreSQL refuses offsets past ±15:59), ids in 1..MAX_ID, integers within a bigint,
    storable strings for text fields. Anything else is InvalidCursor (400), never an
    OverflowError or a DB error."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        first, last_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if field_type == "DateTimeField":
            first = datetime.fromisoformat(first)
            if first.tzinfo is None:
                raise ValueError("naive datetime")
            first = first.astimezone(UTC)
        elif field_type in _INTEGER_FIELDS:
            if isinstance(first, bool) or not isinstance(first, int):
                raise ValueError("sort value")
            if not -MAX_ID - 1 <= first <= MAX_ID:
                raise ValueError("sort value out of range")
        elif field_type in ("CharField", "TextField", "SlugField"):
            if not isinstance(first, str):
                raise ValueError("sort value")
            ensure_storable(first)
        else:
            raise ValueError(f"no cursor rule for {field_type}")
        if not isinstance(last_id, int) or isinstance(last_id, bool):
            raise ValueError("id")
        if not is_possible_id(last_id):
            raise ValueError("id out of range")
        return first, last_id
    except (
        ValueError,
        TypeError,
        OverflowError,
        RecursionError,
        binascii.Error,
        UnicodeDecodeError,
    ):
        raise InvalidCursor() from None


def cursor_values_encode(values: list[Any]) -> str:
    """A cursor for a list not paged by `keyset_page` (e.g. ranked search results): the
    JSON values that name the position, base64-encoded like every cursor here."""
    return _encode(values)


def cursor_values_load(cursor: str, *, count: int) -> list[Any]:
    """The `count` JSON values of a cursor made by `cursor_values_encode`, unchecked beyond
    their number: the caller checks each. InvalidCursor (400) for anything else."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError, RecursionError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor() from None
    if not isinstance(values, list) or len(values) != count:
        raise InvalidCursor()
    return values


def cursor_check(cursor: str) -> None:
    """Raise InvalidCursor (400) for a cursor no list accepts. Every list here is keyed on a
    datetime and the id, so one check serves them all, at validation time."""
    _decode(cursor, "DateTimeField")


def keyset_page(
    queryset: QuerySet[M], *, field: str, descending: bool, cursor: str | None, limit: int
) -> Page[M]:
    """One page ordered by (`field`, id), both descending or both ascending."""
    model_field = queryset.model._meta.get_field(field)
    sign = "-" if descending else ""
    queryset = queryset.order_by(f"{sign}{field}", f"{sign}id")
    if cursor:
        value, last_id = _decode(cursor, model_field.get_internal_type())
        op = "lt" if descending else "gt"
        queryset = queryset.filter(
            Q(**{f"{field}__{op}": value}) | Q(**{field: value, f"id__{op}": last_id})
        )
    rows = list(queryset[: limit + 1])
    if len(rows) <= limit:
        return Page(rows, None)
    rows = rows[:limit]
    last = rows[-1]
    return Page(rows, _encode([getattr(last, field), last.pk]))

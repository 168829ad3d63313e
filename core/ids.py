"""Ids the database can hold, and the one way an id from outside is read.

Rows use BigAutoField: 1..2**63-1. A larger or non-positive id names no row, and a too-large
one is an OverflowError on SQLite before the query runs. Text that merely looks like a number
is worse: `"²".isdigit()` is True but `int("²")` raises, and `int("٣")` is 3. So every door —
REST paths, bodies and queries, websocket URLs, token claims, admin URLs and admin forms — reads
an id with `parse_id`: ASCII digits (or a JSON/Python integer) naming a value in 1..MAX_ID, else
None, "no such row". Each door then answers as it answers for a missing row (404, a closed
socket, a refused token, the admin's "doesn't exist"), or with a clean 4xx where the value is a
filter rather than a lookup. No id from a client reaches a query unchecked.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, Field, Strict

MAX_ID = 2**63 - 1

# `[0-9]`, not `\d`: in a str pattern `\d` matches every Unicode decimal digit ("٣").
_ASCII_DIGITS = re.compile(r"[0-9]+")
# Longer text is refused before `int()` sees it (leading zeros allowed up to this length).
MAX_ID_CHARS = 64

# A body id: a JSON integer (not true, 1.0 or "1") in 1..MAX_ID, else 422 before any query.
Id = Annotated[int, Strict(), Field(ge=1, le=MAX_ID)]
# A body id where 0 means "none" (e.g. conversation_id 0 starts a new conversation).
IdOrZero = Annotated[int, Strict(), Field(ge=0, le=MAX_ID)]


def is_possible_id(value: int) -> bool:
    return 1 <= value <= MAX_ID


def parse_id(value: object) -> int | None:
    """The row id `value` names, or None when it can name no row.

    Accepted: an `int` (never a bool) in 1..MAX_ID, or a `str` of at most MAX_ID_CHARS ASCII
    digits whose value is in 1..MAX_ID. Everything else — signs, spaces, underscores, "1e3",
    "0x1", superscripts, other scripts' digits, 20-digit numbers — is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if is_possible_id(value) else None
    if isinstance(value, str) and len(value) <= MAX_ID_CHARS and _ASCII_DIGITS.fullmatch(value):
        number = int(value)
        return number if is_possible_id(number) else None
    return None


def _path_id(value: object) -> int:
    return parse_id(value) or 0


# An id from a URL path. Anything `parse_id` refuses becomes 0, which names no row: "cannot
# exist" answers exactly like "missing or not yours" (404), and nothing else reaches a query.
PathId = Annotated[int, BeforeValidator(_path_id)]


def _query_id(value: object) -> int:
    parsed = parse_id(value)
    if parsed is None:
        raise ValueError(f"must be an id: ASCII digits, 1 to {MAX_ID}")
    return parsed


# An id in a query string (a filter, not a lookup): anything `parse_id` refuses is a 422 that
# says so, rather than a silently empty page.
QueryId = Annotated[int, BeforeValidator(_query_id)]

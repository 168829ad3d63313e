"""Ids the database can hold. Rows use BigAutoField: 1..2**63-1. A larger or non-positive id
names no row, and a too-large one is an OverflowError on SQLite before the query runs, so ids
from clients are checked at the boundary (`Id` in path and body schemas) and once more in the
selectors (`is_possible_id`) for callers that are not schemas (websocket frames, the admin).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, Strict

MAX_ID = 2**63 - 1

# A body id: a JSON integer (not true, 1.0 or "1") in 1..MAX_ID, else 422 before any query.
Id = Annotated[int, Strict(), Field(ge=1, le=MAX_ID)]
# A body id where 0 means "none" (e.g. conversation_id 0 starts a new conversation).
IdOrZero = Annotated[int, Strict(), Field(ge=0, le=MAX_ID)]


def is_possible_id(value: int) -> bool:
    return 1 <= value <= MAX_ID


def _path_id(value: int) -> int:
    return value if is_possible_id(value) else 0


# An id from a URL path. One that cannot name a row (negative, zero, past MAX_ID) becomes 0,
# which names none: "cannot exist" answers exactly like "missing or not yours" (404), and no
# out-of-range integer ever reaches a query.
PathId = Annotated[int, AfterValidator(_path_id)]

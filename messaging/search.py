"""Full-text search over message contents (`GET /search`, the admin's search box).

The index is the database's own (migration 0004_message_search), so no writer knows about it:
- PostgreSQL: the generated `search_vector` column (english configuration) with a GIN index,
  queried with `websearch_to_tsquery` — which never raises on user syntax: quotes make phrases,
  `-word` excludes, `or` alternates, everything else is a word — ranked by `ts_rank`, with
  snippets from `ts_headline`.
- SQLite (the embedded default): an FTS5 table (porter stemming, unicode61) kept by triggers,
  ranked by bm25. The query is rebuilt from the user's words, each one quoted, so FTS5's own
  operators and punctuation can never reach MATCH as syntax: quoted phrases, `-word` and `or`
  behave as on PostgreSQL.

Indexed: customer, agent and operator messages; system notices are not. Internal notes are not
messages at all (escalations.InternalNote), so nothing here can return one.

Snippets: the database marks the matched words with the control characters \\x01 / \\x02 (no
stored message contains them: message text refuses control characters, and any that reach the
text anyway are blanked first); `<` and `>` are swapped for \\x03 / \\x04 so PostgreSQL's parser
does not take them for tags and drop them. The result is HTML-escaped here and only then are
the marks turned into `<mark>` and `</mark>`: the one piece of markup in a snippet is ours.

Who sees what: the ownership filter is part of the statement — a customer's search is limited
to their own conversations in the SQL; staff who read any conversation search them all.

Order: best match first (score descending, then the newer message). A search across customers
(an operator's, without `customer_id`) ranks the newest RECENT_MESSAGES (100 000) messages of
the deployment first, then the older ones; a search within one customer's conversations ranks
all of them at once. Why two tiers: ranking needs every matching message's vector, and a word
in one message of twenty matches 50 000 messages in a million, all over the table; PostgreSQL
then reads most of it for each search (measured: ~130 ms, I/O-bound, on 1 000 000 messages).
Ranking the recent tier first reads only the matches among the newest messages (the primary
key's range beside the full-text index); the older tier is read only when the recent one does
not fill the page — which is always the case for rare words, whose matches are few and cheap
wherever they are. For support work the recent conversations are also the likelier ones. Pages
are keyset-paged with a cursor carrying the last (tier, score, id) and the tiers' boundary,
fixed by the first page.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from core.fixedsql import column, table
from core.ids import MAX_ID, is_possible_id
from core.pagination import InvalidCursor, Page, cursor_values_encode, cursor_values_load
from messaging.models import Conversation, Message

MAX_QUERY_CHARS = 200
MARK_START, MARK_END = "\x01", "\x02"
_LT, _GT = "\x03", "\x04"
# Characters blanked in the text before the database marks it, and what `<`/`>` become.
_PG_FROM = "<>\x01\x02\x03\x04"
_PG_TO = _LT + _GT + "    "
_PG_HEADLINE = (
    f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=30, MinWords=12, ShortWord=3, "
    'MaxFragments=2, FragmentDelimiter=" … "'
)
# A short message is its own snippet, whole (ts_headline's fragments end at a word, which would
# cut "…my <parcel>?" after "parcel").
_PG_HEADLINE_WHOLE = f"StartSel={MARK_START}, StopSel={MARK_END}, HighlightAll=true"
SHORT_MESSAGE_CHARS = 240
_FTS_TABLE = "messaging_message_search"
_SNIPPET_TOKENS = 24


@dataclass(frozen=True)
class SearchHit:
    conversation_id: int
    customer_id: int
    status: str
    message_id: int
    seq: int
    snippet: str
    created_at: datetime
    score: float
    tier: int = 0  # 0: among the newest messages, 1: older (the ranking's two tiers)


def snippet_html(marked: str) -> str:
    """The database's marked excerpt → safe HTML: everything escaped, then the marks."""
    text = marked.replace(_LT, "<").replace(_GT, ">")
    escaped = html.escape(text, quote=True)
    return escaped.replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")


# Ranks are small (ts_rank below 1, bm25 in the tens): a cursor claiming more is not ours.
MAX_CURSOR_SCORE = 1e9
# The newest messages ranked first as one tier, the older ones after them (module docstring).
RECENT_MESSAGES = 100_000


@dataclass(frozen=True)
class SearchPosition:
    """Where a page ended: the last hit's tier, score and message id, and the tiers' boundary
    (an id) fixed by the first page, so pages do not shift as new messages arrive."""

    tier: int
    score: float
    message_id: int
    boundary: int

    def encode(self) -> str:
        return cursor_values_encode([self.tier, self.score, self.message_id, self.boundary])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def search_cursor_decode(cursor: str) -> SearchPosition:
    """A search cursor (`SearchPosition`), every value checked: a tier 0 or 1, a finite score
    of a plausible size, a message id that can exist, a boundary within a bigint. Anything
    else is InvalidCursor (400), never a database error."""
    tier, score, message_id, boundary = cursor_values_load(cursor, count=4)
    if (
        tier not in (0, 1)
        or not _is_int(tier)
        or isinstance(score, bool)
        or not isinstance(score, int | float)
        or not math.isfinite(score)
        or abs(score) > MAX_CURSOR_SCORE
        or not _is_int(message_id)
        or not is_possible_id(message_id)
        or not _is_int(boundary)
        or not -MAX_ID <= boundary <= MAX_ID
    ):
        raise InvalidCursor()
    return SearchPosition(tier=tier, score=float(score), message_id=message_id, boundary=boundary)


_FTS_TERM = re.compile(r'(-?)"([^"]*)"|(\S+)')
_WORD = re.compile(r"\w", re.UNICODE)


def fts5_query(text: str) -> str | None:
    """The user's words as an FTS5 query in which every word or phrase is a quoted string: no
    FTS5 operator, column filter, prefix star or bracket can come from the user. Mirrors
    `websearch_to_tsquery`: "a phrase", -excluded, `or` between alternatives, all else AND.
    None when nothing searchable is left (only punctuation, or only exclusions)."""
    groups: list[list[str]] = [[]]  # OR of ANDs
    excluded: list[str] = []
    pending_or = False
    for match in _FTS_TERM.finditer(text):
        negative, phrase, bare = match.group(1), match.group(2), match.group(3)
        if bare is not None and bare.lower() == "or":
            pending_or = bool(groups[-1])
            continue
        if bare is not None:
            negative = "-" if bare.startswith("-") and len(bare) > 1 else ""
            phrase = bare[1:] if negative else bare
        words = phrase or ""
        if not _WORD.search(words):
            continue
        quoted = '"' + words.replace('"', '""') + '"'
        if negative:
            excluded.append(quoted)
            continue
        if pending_or:
            groups.append([])
            pending_or = False
        groups[-1].append(quoted)
    alternatives = [" AND ".join(group) for group in groups if group]
    if not alternatives:
        return None
    query = " OR ".join(f"({alternative})" for alternative in alternatives)
    for term in excluded:
        query = f"({query}) NOT {term}"
    return query


def message_search(
    *,
    q: str,
    customer_id: int | None,
    status: str | None,
    limit: int,
    cursor: str | None = None,
) -> Page[SearchHit]:
    """Ranked hits for `q` and the next page's cursor: best match first among the newest
    RECENT_MESSAGES messages, then best match first among the older ones (module docstring).
    `customer_id`: only that customer's conversations — the caller's own id for a customer
    (the ownership filter), any or None for staff. `status`: the conversation's status."""
    after = search_cursor_decode(cursor) if cursor else None
    if fts5_query(q) is None:
        # Nothing to find (only punctuation, or only exclusions, which PostgreSQL would answer
        # with every message lacking them): no hits, alike on both databases.
        return Page([], None)
    # One customer's messages are few enough to rank all of them at once (and their own
    # conversations are the planner's way in): tiers only for searches across customers.
    if after is not None:
        boundary = after.boundary
    else:
        boundary = _tier_boundary() if customer_id is None else 0
    backend = _postgresql if connection.vendor == "postgresql" else _sqlite
    asked = _Search(q=q, customer_id=customer_id, status=status)
    hits: list[SearchHit] = []
    for tier in (0, 1):
        if after is not None and tier < after.tier:
            continue  # that tier was served by earlier pages
        if tier == 1 and boundary <= 0:
            break  # every message is recent
        start = (after.score, after.message_id) if after and after.tier == tier else None
        rows = backend(asked, limit + 1 - len(hits), (tier, boundary), start)
        hits += [
            SearchHit(
                conversation_id=row[2],
                customer_id=row[3],
                status=row[4],
                message_id=row[0],
                seq=row[1],
                created_at=row[5],
                score=float(row[6]),
                snippet=snippet_html(row[7] or ""),
                tier=tier,
            )
            for row in rows
        ]
        if len(hits) > limit:
            break
    if len(hits) <= limit:
        return Page(hits, None)
    hits = hits[:limit]
    last = hits[-1]
    end = SearchPosition(
        tier=last.tier, score=last.score, message_id=last.message_id, boundary=boundary
    )
    return Page(hits, end.encode())


def _tier_boundary() -> int:
    """The id below which messages belong to the older tier (≤ 0: all are recent)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX(id) FROM {table(Message)}")  # noqa: S608 - a model name
        (newest,) = cursor.fetchone()
    return int(newest or 0) - RECENT_MESSAGES


def _names() -> dict[str, str]:
    return {
        "message": table(Message),
        "conversation": table(Conversation),
        "m_conversation": column(Message, "conversation"),
        "c_customer": column(Conversation, "customer"),
        "c_status": column(Conversation, "status"),
        "m_created": column(Message, "created_at"),
    }


def _hit_columns() -> str:
    n = _names()
    return (
        f"m.id, m.seq, m.{n['m_conversation']}, c.{n['c_customer']}, c.{n['c_status']}, "
        f"m.{n['m_created']}"
    )


Tier = tuple[int, int]  # (0 or 1, the boundary id)
After = tuple[float, int] | None  # the (score, message id) a page starts after
Row = tuple[Any, ...]


@dataclass(frozen=True)
class _Search:
    """What is asked, the same for every tier and page: the words and the two filters."""

    q: str
    customer_id: int | None
    status: str | None


def _filters(search: _Search, tier: Tier, params: list[Any]) -> tuple[str, list[Any]]:
    names = _names()
    # The tier's id range: with the primary key beside the full-text index, PostgreSQL reads
    # only the matching messages of that range (a BitmapAnd of the two indexes).
    sql = ""
    if tier[1] > 0:
        sql = " AND m.id > %s" if tier[0] == 0 else " AND m.id <= %s"
        params.append(tier[1])
    if search.customer_id is not None:
        sql += f" AND c.{names['c_customer']} = %s"
        params.append(search.customer_id)
    if search.status is not None:
        sql += f" AND c.{names['c_status']} = %s"
        params.append(search.status)
    return sql, params


def _postgresql(search: _Search, limit: int, tier: Tier, after: After) -> list[Row]:
    n = _names()
    params: list[Any] = [search.q]
    where, params = _filters(search, tier, params)
    # As float8 on both sides: a float4 rank read back through its text form and compared
    # with a numeric literal does not round-trip, and the cursor's comparison must be exact.
    rank = "ts_rank(m.search_vector, query)::float8"
    if after is not None:
        where += f" AND ({rank} < %s::float8 OR ({rank} = %s::float8 AND m.id < %s))"
        params += [after[0], after[0], after[1]]
    params.append(limit)
    # Ranked ids first (the index finds the matches; only ranks are computed for all of
    # them), then headlines for the page's rows only: ts_headline re-parses the text.
    # The conversation is joined into the ranking only when it filters (an owner, a status):
    # an operator's unfiltered search ranks the messages alone.
    joined = (
        f"JOIN {n['conversation']} c ON c.id = m.{n['m_conversation']} "
        if search.customer_id is not None or search.status is not None
        else ""
    )
    sql = (
        f"SELECT {_hit_columns()}, r.score, "  # noqa: S608 - names from the models
        f"ts_headline('english', translate(m.content, %s, %s), r.query, "
        f"CASE WHEN length(m.content) <= %s THEN %s ELSE %s END) "
        f"FROM (SELECT m.id, {rank} AS score, query "
        f"FROM {n['message']} m {joined}, "
        f"websearch_to_tsquery('english', %s) query "
        f"WHERE m.search_vector @@ query{where} "
        f"ORDER BY score DESC, m.id DESC LIMIT %s) r "
        f"JOIN {n['message']} m ON m.id = r.id "
        f"JOIN {n['conversation']} c ON c.id = m.{n['m_conversation']} "
        f"ORDER BY r.score DESC, r.id DESC"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [_PG_FROM, _PG_TO, SHORT_MESSAGE_CHARS, _PG_HEADLINE_WHOLE, _PG_HEADLINE, *params],
        )
        return list(cursor.fetchall())


def _sqlite(search: _Search, limit: int, tier: Tier, after: After) -> list[Row]:
    match = fts5_query(search.q)
    if match is None:
        return []
    n = _names()
    params: list[Any] = [match]
    where, params = _filters(search, tier, params)
    if after is not None:
        where += " AND (s.score < %s OR (s.score = %s AND m.id < %s))"
        params += [after[0], after[0], after[1]]
    params.append(limit)
    sql = (
        f"SELECT {_hit_columns()}, s.score "  # noqa: S608 - names from the models
        f"FROM (SELECT rowid AS id, -bm25({_FTS_TABLE}) AS score FROM {_FTS_TABLE} "
        f"WHERE {_FTS_TABLE} MATCH %s) s "
        f"JOIN {n['message']} m ON m.id = s.id "
        f"JOIN {n['conversation']} c ON c.id = m.{n['m_conversation']} "
        f"WHERE 1 = 1{where} "
        f"ORDER BY s.score DESC, m.id DESC LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = list(cursor.fetchall())
        if not rows:
            return []
        # Snippets for the page's rows only.
        ids = [row[0] for row in rows]
        placeholders = ", ".join(["%s"] * len(ids))
        cursor.execute(
            f"SELECT rowid, snippet({_FTS_TABLE}, 0, %s, %s, %s, %s) "  # noqa: S608 - fixed names
            f"FROM {_FTS_TABLE} "
            f"WHERE {_FTS_TABLE} MATCH %s AND rowid IN ({placeholders})",
            [MARK_START, MARK_END, "…", _SNIPPET_TOKENS, match, *ids],
        )
        snippets = dict(cursor.fetchall())
    # SQLite returns datetimes as text: the backend's own converter makes them aware.
    convert = connection.ops.convert_datetimefield_value  # type: ignore[attr-defined]
    return [
        (*row[:5], convert(row[5], None, connection), row[6], snippets.get(row[0], ""))
        for row in rows
    ]

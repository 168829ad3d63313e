"""Plumbing for the hot path's fixed SQL statements (accounts.fastauth, messaging.fastpath):
names from the models, and a cursor whose statements PostgreSQL prepares once per connection.

Django's PostgreSQL backend binds parameters on the client by default (psycopg's ClientCursor):
every execution quotes each value into the SQL text in Python and PostgreSQL parses and plans the
result anew. That is the right default for the ORM, whose SQL is not always preparable (Django
ticket #20516), and the wrong one for a handful of fixed statements run on every request:
`prepared_cursor` gives those server-side binding, so psycopg sends values apart from the text
and, after `DB_PREPARE_THRESHOLD` (5) runs of the same statement on a connection, prepares
it (Django turns preparing off by default; settings turn it back on, and only these cursors can
prepare). Pooled connections keep their prepared statements. Behind PgBouncer in transaction
mode set `DB_PREPARE_THRESHOLD=` (empty: never prepare) unless the pooler tracks prepared
statements (docs/operations.md).
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.backends.utils import CursorWrapper
from django.db.models import Field, Q
from django.db.models.sql import Query


def table(model: Any) -> str:
    return str(model._meta.db_table)


def field(model: Any, name: str) -> Field[Any, Any]:
    """A concrete field by name (its column, type and conversions)."""
    found: Field[Any, Any] = model._meta.get_field(name)
    return found


def column(model: Any, name: str) -> str:
    return str(field(model, name).column)


def where(model: Any, condition: Q, connection: Any) -> tuple[str, int]:
    """`condition` — the same Q object the ORM's querysets filter by — as the SQL of a WHERE
    clause on `model`'s table (columns qualified by the table's name) and how many values it
    binds, for a fixed statement that must apply exactly the rule the ORM applies. The values
    in `condition` only shape the SQL; the statement binds the real ones, in the clause's
    order."""
    query = Query(model)
    sql, params = query.build_where(condition).as_sql(
        query.get_compiler(connection=connection), connection
    )
    return sql, len(params)


def converters(model: Any, connection: Any) -> list[tuple[int, str, list[Any], Any]]:
    """The ORM's from-database converters of a model's concrete columns on this connection
    (SQLite: booleans and datetimes arrive as int/str; JSON as text everywhere), as (index in
    `concrete_fields`, field name, converters, column) for the columns that have any; computed
    once per connection."""
    cache_name = f"_parley_converters_{model._meta.label_lower}"
    cached = getattr(connection, cache_name, None)
    if cached is None:
        cached = []
        for index, field in enumerate(model._meta.concrete_fields):
            col = field.get_col(table(model))
            found = connection.ops.get_db_converters(col) + col.get_db_converters(connection)
            if found:
                cached.append((index, field.name, found, col))
        setattr(connection, cache_name, cached)
    return cached  # type: ignore[no-any-return]


def prepared_cursor(using: str = "default") -> CursorWrapper:
    """A cursor of connection `using` for fixed statements: server-side binding on PostgreSQL
    (prepared after a few runs), the ordinary cursor elsewhere. Wrapped like any Django
    cursor, so query logging, execute wrappers and error translation all still apply."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return connection.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    # What BaseDatabaseWrapper._cursor does, with the cursor class chosen here.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw: Any = ServerBindingCursor(connection.connection)  # type: ignore[call-arg]
    with connection.wrap_database_errors:
        wrapped: CursorWrapper = connection._prepare_cursor(raw)  # type: ignore[attr-defined]
    return wrapped

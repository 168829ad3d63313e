"""Full-text search over message contents, kept by the database itself (messaging/search.py).

PostgreSQL: a stored generated column `search_vector` (to_tsvector('english', content) for
every role but `system`, NULL for system notices) and a GIN index on it. `<` and `>` are read
as spaces: PostgreSQL's parser would take "<parcel>" for an HTML tag and leave the word out,
where a customer meant the word (SQLite's tokenizer splits on them anyway). The column is computed
by PostgreSQL on every INSERT, so no writer — the ORM's, or messaging.fastpath's one-statement
turn — names it or changes; ranking reads the stored vector instead of parsing each matching
message again. The model does not declare the column: only messaging/search.py reads it.

SQLite: an FTS5 table with external content (the index only; the text stays in
messaging_message) and triggers that keep it in step on INSERT, DELETE and UPDATE. The same
roles are indexed.

Adding the column rewrites messaging_message on PostgreSQL (a generated column is computed for
every existing row): on a large table run this migration in a maintenance window.
"""

from django.db import migrations

PG_FORWARD = [
    """
    ALTER TABLE messaging_message ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (
        CASE WHEN role <> 'system'
        THEN to_tsvector('english'::regconfig, translate(content, '<>', '  ')) END
    ) STORED
    """,
    "CREATE INDEX message_search_vector ON messaging_message USING gin (search_vector)",
]
PG_REVERSE = [
    "DROP INDEX IF EXISTS message_search_vector",
    "ALTER TABLE messaging_message DROP COLUMN IF EXISTS search_vector",
]

SQLITE_FORWARD = [
    """
    CREATE VIRTUAL TABLE messaging_message_search USING fts5(
        content, content='messaging_message', content_rowid='id',
        tokenize='porter unicode61 remove_diacritics 2'
    )
    """,
    """
    CREATE TRIGGER messaging_message_search_insert AFTER INSERT ON messaging_message
    WHEN new.role <> 'system' BEGIN
        INSERT INTO messaging_message_search (rowid, content) VALUES (new.id, new.content);
    END
    """,
    """
    CREATE TRIGGER messaging_message_search_delete AFTER DELETE ON messaging_message
    WHEN old.role <> 'system' BEGIN
        INSERT INTO messaging_message_search (messaging_message_search, rowid, content)
        VALUES ('delete', old.id, old.content);
    END
    """,
    # One trigger, its two statements in this order: SQLite runs separate triggers on one
    # event in an order of its own, and indexing the new text under a rowid before the old
    # text was removed corrupts an FTS5 index.
    """
    CREATE TRIGGER messaging_message_search_update AFTER UPDATE OF content, role
    ON messaging_message BEGIN
        INSERT INTO messaging_message_search (messaging_message_search, rowid, content)
        SELECT 'delete', old.id, old.content WHERE old.role <> 'system';
        INSERT INTO messaging_message_search (rowid, content)
        SELECT new.id, new.content WHERE new.role <> 'system';
    END
    """,
    """
    INSERT INTO messaging_message_search (rowid, content)
    SELECT id, content FROM messaging_message WHERE role <> 'system'
    """,
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS messaging_message_search_insert",
    "DROP TRIGGER IF EXISTS messaging_message_search_delete",
    "DROP TRIGGER IF EXISTS messaging_message_search_update",
    "DROP TABLE IF EXISTS messaging_message_search",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0003_message_conversation_index_in_seq_unique"),
    ]

    operations = [
        migrations.RunPython(
            _run({"postgresql": PG_FORWARD, "sqlite": SQLITE_FORWARD}),
            _run({"postgresql": PG_REVERSE, "sqlite": SQLITE_REVERSE}),
        ),
    ]

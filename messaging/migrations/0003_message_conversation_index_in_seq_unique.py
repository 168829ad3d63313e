"""Drop the single-column index on messaging_message.conversation_id: the (conversation, seq)
unique index leads with the same column and serves every lookup by conversation, so the second
index only cost each INSERT one more B-tree to update (and offered the planner a worse path for
short conversations: read them all by conversation, then sort by seq).

Only the index goes. Django's own AlterField would also drop and re-add the foreign-key
constraint on PostgreSQL, re-validating every message row under lock; the state change and a
plain DROP INDEX do not. The index name is Django's, the same on PostgreSQL and SQLite."""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "messaging_message_conversation_id_3db4d3d1"


class Migration(migrations.Migration):
    dependencies = [
        ("messaging", "0002_conversation_agent_turns"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="message",
                    name="conversation",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages",
                        to="messaging.conversation",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql=f'DROP INDEX IF EXISTS "{INDEX}"',
                    reverse_sql=f'CREATE INDEX "{INDEX}" ON "messaging_message" ("conversation_id")',
                ),
            ],
        ),
    ]

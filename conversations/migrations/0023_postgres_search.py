"""On PostgreSQL, search (conversations.search) finds words through pg_trgm's trigram
indexes on messages' text and conversations' titles: `ILIKE '%word%'` is answered from
the index for a word of three characters or more, Chinese included (its characters are
letters to pg_trgm under a UTF-8 locale). pg_trgm is a trusted extension: the database's
owner may create it. On SQLite this does nothing (its indexes are migrations 0012 and 0019).
"""

from typing import Any

from django.db import migrations

INDEXES = {
    "conversations_message_content_trgm": ("conversations_message", "content"),
    "conversations_conversation_title_trgm": ("conversations_conversation", "title"),
}


def indexes_create(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, (table, column) in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ({column} gin_trgm_ops)")


def indexes_drop(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0022_message_parent"),
    ]

    operations = [migrations.RunPython(indexes_create, indexes_drop)]

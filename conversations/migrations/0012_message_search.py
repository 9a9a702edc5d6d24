"""A full-text index of message text for search, kept in step by triggers.

SQLite's FTS5 with the trigram tokenizer: it finds any run of three or more characters,
so Chinese (written without spaces) is found as well as English. The index holds no
copy of the text (its content is the message table), and the triggers change it in the
same transaction as the message. See conversations.search_index; other databases search
without it (conversations.search).
"""

from django.db import migrations


def _create(apps, schema_editor) -> None:
    from conversations.search_index import search_index_ensure

    search_index_ensure(schema_editor.connection)


def _drop(apps, schema_editor) -> None:
    from conversations.search_index import search_index_drop

    search_index_drop(schema_editor.connection, tables=("conversations_message_search",))


class Migration(migrations.Migration):
    dependencies = [("conversations", "0011_attachment")]

    operations = [migrations.RunPython(_create, _drop)]

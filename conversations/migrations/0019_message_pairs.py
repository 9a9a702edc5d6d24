"""The pair index of message text: every two adjacent letters or digits of a message, so
that words too short for the trigram index ("北京", "AI") are found without reading every
message. See conversations.search_index."""

from django.db import migrations


def _create(apps, schema_editor) -> None:
    from conversations.search_index import search_index_ensure

    search_index_ensure(schema_editor.connection)


def _drop(apps, schema_editor) -> None:
    from conversations.search_index import PAIRS_TABLE, search_index_drop

    search_index_drop(schema_editor.connection, tables=(PAIRS_TABLE,))


class Migration(migrations.Migration):
    dependencies = [("conversations", "0018_folders")]

    operations = [migrations.RunPython(_create, _drop)]

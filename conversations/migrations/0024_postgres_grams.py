"""On PostgreSQL, the grams index: a word shorter than a trigram with a character beyond
ASCII ("北京", "猫") is found through it (conversations.search_postgres). Chinese is
written without spaces and many of its words are one or two characters long, which
pg_trgm's index (migration 0023) cannot look up.

chatsite_grams(text) is every character, and every pair of adjacent characters, of each
run of characters beyond ASCII in the lower-cased text. ASCII-only text has none, so it
costs a regular expression's check to write (about 6 µs a message, measured); Chinese
costs about 0.2 ms per 400 characters. The pairs come from two regular expression passes
(even and odd offsets): indexing an array or a string character by character is linear
in PostgreSQL, which made a 4,000-character message take 96 ms. On SQLite this does
nothing (its pair index is migration 0019).
"""

from typing import Any

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION chatsite_grams(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
  SELECT CASE WHEN t !~ '[^\x01-\x7f]' THEN '{}'::text[] ELSE (
    SELECT coalesce(array_agg(DISTINCT g), '{}')
    FROM regexp_split_to_table(lower(t), '[\x01-\x7f[:space:]]+') AS run,
         LATERAL (SELECT unnest(string_to_array(run, NULL))
                  UNION ALL SELECT (regexp_matches(run, '..', 'g'))[1]
                  UNION ALL SELECT (regexp_matches(substr(run, 2), '..', 'g'))[1]) AS grams(g)
    WHERE g <> '') END
$$
"""
INDEX = "conversations_message_content_grams"


def grams_create(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION)
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON conversations_message USING gin (chatsite_grams(content))"
    )


def grams_drop(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")
    schema_editor.execute("DROP FUNCTION IF EXISTS chatsite_grams(text)")


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0023_postgres_search"),
    ]

    operations = [migrations.RunPython(grams_create, grams_drop)]

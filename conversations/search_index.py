"""The indexes of message text (conversations.search): their tables and triggers.

Two FTS5 tables, kept in step with the message table by triggers (in the same
transaction as the message):
- the trigram index finds any run of three or more characters, so Chinese (written
  without spaces) is found as well as English; its content is the message table;
- the pair index holds every two adjacent letters or digits of a message, for the words
  too short for trigrams ("北京", "AI"), which otherwise meant reading every message of
  the owner. It keeps no text (contentless) and no positions (`detail=none`): it only says
  which messages hold a pair. Its triggers call `chatsite_pairs()`, a function each Django
  connection to SQLite registers (conversations.apps): a tool writing messages through
  another connection (the sqlite3 shell) must go through Django instead.

Made by migrations 0012 and 0019 and made sure of after every `migrate`: Django's SQLite
backend alters a table by building a new one and dropping the old, and SQLite drops a
table's triggers with it. A later migration of the message table would leave new and
edited messages out of the indexes, with no error; after it, the triggers are made again
and the indexes rebuilt from the messages.
"""

import sqlite3
from dataclasses import dataclass

from django.db.backends.base.base import BaseDatabaseWrapper

TABLE = "conversations_message_search"
PAIRS_TABLE = "conversations_message_pairs"
PAIRS_FUNCTION = "chatsite_pairs"
MESSAGES = "conversations_message"
TRIGRAM_SQLITE = (3, 34)  # the first SQLite with FTS5's trigram tokenizer


def text_pairs(text: object) -> str:
    """Every two adjacent letters or digits of the text, lower-cased, once each and in
    order (the same text always gives the same pairs: a delete must name what was added)."""
    if not isinstance(text, str) or len(text) < 2:
        return ""
    folded = text.lower()
    pairs = {folded[i : i + 2] for i in range(len(folded) - 1) if folded[i : i + 2].isalnum()}
    return " ".join(sorted(pairs))


@dataclass(frozen=True)
class _Index:
    table: str
    create: str
    triggers: dict[str, str]
    rebuild: tuple[str, ...]


def _triggers(table: str, column: str, text: str) -> dict[str, str]:
    """The index's triggers; `text` is what it holds of a message, in terms of its content."""
    old, new = text.format(row="old"), text.format(row="new")
    delete_old = f"INSERT INTO {table}({table}, rowid, {column}) VALUES ('delete', old.id, {old});"
    insert_new = f"INSERT INTO {table}(rowid, {column}) VALUES (new.id, {new});"
    return {
        f"{table}_insert": f"AFTER INSERT ON {MESSAGES} BEGIN {insert_new} END",
        f"{table}_delete": f"AFTER DELETE ON {MESSAGES} BEGIN {delete_old} END",
        # Only when the text changed: a reply's status and timing updates leave it alone.
        f"{table}_update": (
            f"AFTER UPDATE OF content ON {MESSAGES} WHEN old.content IS NOT new.content "
            f"BEGIN {delete_old} {insert_new} END"
        ),
    }


_TRIGRAMS = _Index(
    table=TABLE,
    # Its column is named as the message table's: an external-content table reads it there.
    create=(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5("
        f"content, content='{MESSAGES}', content_rowid='id', tokenize='trigram')"
    ),
    triggers=_triggers(TABLE, "content", "{row}.content"),
    rebuild=(f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')",),
)
_PAIRS = _Index(
    table=PAIRS_TABLE,
    # unicode61 splits the pairs at the spaces between them and folds their case.
    create=(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {PAIRS_TABLE} USING fts5("
        "pairs, content='', detail=none, tokenize='unicode61 remove_diacritics 0')"
    ),
    triggers=_triggers(PAIRS_TABLE, "pairs", PAIRS_FUNCTION + "({row}.content)"),
    rebuild=(
        f"INSERT INTO {PAIRS_TABLE}({PAIRS_TABLE}) VALUES ('delete-all')",
        f"INSERT INTO {PAIRS_TABLE}(rowid, pairs) SELECT id, {PAIRS_FUNCTION}(content) FROM {MESSAGES}",
    ),
)
INDEXES = (_TRIGRAMS, _PAIRS)
TRIGGERS = {name: body for index in INDEXES for name, body in index.triggers.items()}


def index_supported(connection: BaseDatabaseWrapper) -> bool:
    return connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= TRIGRAM_SQLITE


def pairs_function_register(connection: BaseDatabaseWrapper) -> None:
    """Give the connection the function the pair index's triggers call."""
    if connection.vendor == "sqlite" and connection.connection is not None:
        connection.connection.create_function(PAIRS_FUNCTION, 1, text_pairs, deterministic=True)


def search_index_ensure(connection: BaseDatabaseWrapper) -> bool:
    """Make whatever of the indexes is missing; rebuild an index from the messages when
    any of it was. True when one was rebuilt. Nothing on other databases, or before the
    message table exists."""
    if not index_supported(connection):
        return False
    connection.ensure_connection()
    pairs_function_register(connection)
    rebuilt = False
    with connection.cursor() as cursor:
        for index in INDEXES:
            names = [MESSAGES, index.table, *index.triggers]
            cursor.execute(
                f"SELECT name FROM sqlite_master WHERE name IN ({', '.join(['%s'] * len(names))})", names
            )
            present = {name for (name,) in cursor.fetchall()}
            if MESSAGES not in present or present >= set(names):
                continue
            cursor.execute(index.create)
            for name, body in index.triggers.items():
                cursor.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {body}")
            for statement in index.rebuild:
                cursor.execute(statement)
            rebuilt = True
    return rebuilt


def search_index_drop(
    connection: BaseDatabaseWrapper, tables: tuple[str, ...] = (TABLE, PAIRS_TABLE)
) -> None:
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        for index in INDEXES:
            if index.table not in tables:
                continue
            for name in index.triggers:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
            cursor.execute(f"DROP TABLE IF EXISTS {index.table}")

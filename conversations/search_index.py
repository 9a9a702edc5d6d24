"""The trigram index of message text (conversations.search): its table and triggers.

Made by migration 0012 and made sure of after every `migrate`: Django's SQLite backend
alters a table by building a new one and dropping the old, and SQLite drops a table's
triggers with it. A later migration of the message table would leave new and edited
messages out of the index, with no error; after it, the triggers are made again and the
index rebuilt from the messages.
"""

import sqlite3

from django.db.backends.base.base import BaseDatabaseWrapper

TABLE = "conversations_message_search"
MESSAGES = "conversations_message"
TRIGRAM_SQLITE = (3, 34)  # the first SQLite with FTS5's trigram tokenizer

_CREATE_TABLE = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5("
    f"content, content='{MESSAGES}', content_rowid='id', tokenize='trigram')"
)
_DELETE_OLD = f"INSERT INTO {TABLE}({TABLE}, rowid, content) VALUES ('delete', old.id, old.content);"
_INSERT_NEW = f"INSERT INTO {TABLE}(rowid, content) VALUES (new.id, new.content);"
TRIGGERS = {
    f"{TABLE}_insert": f"AFTER INSERT ON {MESSAGES} BEGIN {_INSERT_NEW} END",
    f"{TABLE}_delete": f"AFTER DELETE ON {MESSAGES} BEGIN {_DELETE_OLD} END",
    # Only when the text changed: a reply's status and timing updates leave the index alone.
    f"{TABLE}_update": (
        f"AFTER UPDATE OF content ON {MESSAGES} WHEN old.content IS NOT new.content "
        f"BEGIN {_DELETE_OLD} {_INSERT_NEW} END"
    ),
}


def index_supported(connection: BaseDatabaseWrapper) -> bool:
    return connection.vendor == "sqlite" and sqlite3.sqlite_version_info >= TRIGRAM_SQLITE


def search_index_ensure(connection: BaseDatabaseWrapper) -> bool:
    """Make whatever of the index is missing; rebuild it from the messages when anything
    was. True when it rebuilt. Nothing on other databases, or before the message table exists."""
    if not index_supported(connection):
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE name IN (%s, %s, %s, %s, %s)", [MESSAGES, TABLE, *TRIGGERS]
        )
        present = {name for (name,) in cursor.fetchall()}
        if MESSAGES not in present or present >= {TABLE, *TRIGGERS}:
            return False
        cursor.execute(_CREATE_TABLE)
        for name, body in TRIGGERS.items():
            cursor.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {body}")
        cursor.execute(f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')")
    return True


def search_index_drop(connection: BaseDatabaseWrapper) -> None:
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        for name in TRIGGERS:
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")

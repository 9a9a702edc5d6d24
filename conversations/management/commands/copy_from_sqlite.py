"""manage.py copy_from_sqlite PATH: move an install from SQLite to PostgreSQL.

Copies every row of every model (users, sessions, roles, providers, conversations and
their messages, tokens, limits, shared links...) from the SQLite database file at PATH
into the database DATABASE_URL names, each with its id, in one transaction; then sets
each table's id sequence past the ids copied. The target must be migrated and empty
(`manage.py migrate` makes it so), and the source migrated as far (the same code's
`manage.py migrate` with SQLITE_PATH set to it). Stop the app first: what it writes
meanwhile is not copied. SQLite's search indexes are not copied: PostgreSQL's own
(conversations migration 0023) cover the rows as they arrive.
"""

from pathlib import Path
from typing import Any

from django.apps import apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Model

SOURCE = "sqlite_source"
BATCH = 2000
# What `migrate` writes into an empty database: replaced by the source's own rows.
MADE_BY_MIGRATE: tuple[type[Model], ...] = (Permission, ContentType)


def _models() -> list[type[Model]]:
    return [
        model
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed and not model._meta.proxy
    ]


def _source_open(path: Path) -> None:
    configured = connections.configure_settings(
        {
            DEFAULT_DB_ALIAS: connections.settings[DEFAULT_DB_ALIAS],
            SOURCE: {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)},
        }
    )
    connections.settings[SOURCE] = configured[SOURCE]


def _applied(alias: str) -> set[tuple[str, str]]:
    return set(MigrationRecorder(connections[alias]).applied_migrations())


def _copy(model: type[Model]) -> int:
    """The model's rows, as stored, from the source into the target."""
    target = connections[DEFAULT_DB_ALIAS]
    fields = model._meta.local_concrete_fields
    table = target.ops.quote_name(model._meta.db_table)
    columns = ", ".join(target.ops.quote_name(str(field.column)) for field in fields)
    insert = f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
    rows = model._base_manager.using(SOURCE).order_by("pk").values_list(*(field.attname for field in fields))
    copied, batch = 0, []
    with target.cursor() as cursor:
        for row in rows.iterator(chunk_size=BATCH):
            # As each field stores it here (JSON, dates, encrypted keys), not as SQLite did.
            batch.append(
                [
                    field.get_db_prep_save(value, connection=target)
                    for field, value in zip(fields, row, strict=True)
                ]
            )
            if len(batch) == BATCH:
                cursor.executemany(insert, batch)
                copied, batch = copied + len(batch), []
        if batch:
            cursor.executemany(insert, batch)
    return copied + len(batch)


class Command(BaseCommand):
    help = "Copy an install's SQLite database (PATH) into the empty, migrated database DATABASE_URL names."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="the SQLite database file, e.g. db.sqlite3")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        if not path.is_file():
            raise CommandError(f"No SQLite database at {path}.")
        target = connections[DEFAULT_DB_ALIAS]
        if target.vendor == "sqlite" and Path(str(target.settings_dict["NAME"])).resolve() == path.resolve():
            raise CommandError(
                "That is the database Chatsite uses now: set DATABASE_URL to the PostgreSQL one."
            )
        _source_open(path)
        try:
            self._copy_all()
        finally:
            connections[SOURCE].close()
            del connections.settings[SOURCE]

    def _copy_all(self) -> None:
        missing = _applied(DEFAULT_DB_ALIAS) - _applied(SOURCE)
        if missing:
            raise CommandError(
                f"The SQLite database lacks {len(missing)} migration(s) the target has: run "
                "`SQLITE_PATH=<it> ./run manage migrate` with this version of Chatsite first."
            )
        models = _models()
        holding = [m._meta.label for m in models if m not in MADE_BY_MIGRATE and m._base_manager.exists()]
        if holding:
            raise CommandError(
                f"The target database is not empty ({', '.join(holding[:5])}...): copy into a "
                "database that `manage.py migrate` has just made."
            )
        with transaction.atomic():
            for model in MADE_BY_MIGRATE:
                model._base_manager.all().delete()
            for model in models:
                count = _copy(model)
                if count:
                    self.stdout.write(f"{model._meta.label}: {count}")
            target = connections[DEFAULT_DB_ALIAS]
            with target.cursor() as cursor:
                for statement in target.ops.sequence_reset_sql(no_style(), models):
                    cursor.execute(statement)
        ContentType.objects.clear_cache()
        self.stdout.write(self.style.SUCCESS("Copied. Start Chatsite with DATABASE_URL set."))

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.imports import ImportRefused, conversations_import


class Command(BaseCommand):
    help = (
        "Import conversations into a user's account from a Chatsite export (JSON or zip) or "
        "a ChatGPT data export (conversations.json or its zip). All of them or, for a file "
        "that cannot be read, none; importing the same file again adds only what is new."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="the export to import")
        parser.add_argument("--user", required=True, help="whose conversations they become")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user {options['user']!r}.")
        try:
            data = options["file"].read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {options['file']}: {exc.strerror}.") from None
        try:
            result = conversations_import(owner=user, data=data)
        except ImportRefused as exc:
            raise CommandError(f"Nothing was imported: {exc.message}") from None
        self.stdout.write(
            f"Imported {result.created} conversation(s) for {user.get_username()}; "
            f"{result.skipped} were there already."
        )

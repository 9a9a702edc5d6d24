from typing import Any

from django.core.management.base import BaseCommand

from roles.services import role_load_builtins


class Command(BaseCommand):
    help = (
        "Create the built-in roles (assistant, teacher, programmer) that are missing. "
        "Existing roles, including edited built-ins, are never changed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = role_load_builtins()
        created = ", ".join(result.created) or "none"
        self.stdout.write(f"Built-in roles created: {created}; kept as they are: {len(result.kept)}")

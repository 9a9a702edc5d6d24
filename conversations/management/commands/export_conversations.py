import json
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.export import as_json, as_markdown, as_text, file_name
from conversations.selectors import conversation_list_for_export


class Command(BaseCommand):
    help = (
        "Export a user's conversations as Markdown or JSON: to stdout, or one file per "
        "conversation in --out DIR. The JSON carries each conversation's system prompt."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--user", required=True, help="whose conversations")
        parser.add_argument("--format", choices=["md", "json"], default="md")
        parser.add_argument("--out", type=Path, help="folder to write one file per conversation into")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user {options['user']!r}.")
        conversations = list(conversation_list_for_export(owner=user))
        fmt, out = options["format"], options["out"]
        if out is None:
            if fmt == "json":
                document = {"conversations": [as_json(c, system_prompt=True) for c in conversations]}
                self.stdout.write(json.dumps(document, ensure_ascii=False, indent=2))
            else:
                self.stdout.write("\n---\n\n".join(as_markdown(c) for c in conversations))
            return
        if out.exists() and not out.is_dir():
            raise CommandError(f"{out} is not a folder.")
        out.mkdir(parents=True, exist_ok=True)
        for conversation in conversations:
            text = as_text(conversation, fmt, system_prompt=True)
            (out / file_name(conversation, fmt)).write_text(text, encoding="utf-8")
        self.stdout.write(f"Wrote {len(conversations)} conversation(s) to {out}")

import json
import re
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.models import Conversation
from conversations.selectors import conversation_list_for_export


def as_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": str(conversation.pk),
        "title": conversation.title,
        "role": conversation.role.slug,
        "system_prompt": conversation.system_prompt,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "messages": [
            {
                "author": message.author,
                "content": message.content,
                "status": message.status,
                "error": message.error,
                "created_at": message.created_at.isoformat(),
            }
            for message in conversation.messages.all()
        ],
    }


def as_markdown(conversation: Conversation) -> str:
    lines = [
        f"# {conversation.title or 'Untitled conversation'}",
        "",
        f"- Role: {conversation.role.name} (`{conversation.role.slug}`)",
        f"- Started: {conversation.created_at:%Y-%m-%d %H:%M} UTC",
        f"- Id: {conversation.pk}",
        "",
    ]
    for message in conversation.messages.all():
        who = "You" if message.author == "user" else conversation.role.name
        note = "" if message.status == "complete" else f" *({message.status})*"
        lines += [f"## {who}{note}", "", message.content or f"*{message.error}*", ""]
    return "\n".join(lines)


def file_name(conversation: Conversation, extension: str) -> str:
    slug = re.sub(r"[^\w-]+", "-", conversation.title.lower()).strip("-")[:40] or "conversation"
    return f"{conversation.created_at:%Y-%m-%d}-{slug}-{str(conversation.pk)[:8]}.{extension}"


class Command(BaseCommand):
    help = (
        "Export a user's conversations as Markdown or JSON: to stdout, or one file per "
        "conversation in --out DIR."
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
                document = {"conversations": [as_json(c) for c in conversations]}
                self.stdout.write(json.dumps(document, ensure_ascii=False, indent=2))
            else:
                self.stdout.write("\n---\n\n".join(as_markdown(c) for c in conversations))
            return
        if out.exists() and not out.is_dir():
            raise CommandError(f"{out} is not a folder.")
        out.mkdir(parents=True, exist_ok=True)
        for conversation in conversations:
            text = (
                json.dumps(as_json(conversation), ensure_ascii=False, indent=2)
                if fmt == "json"
                else as_markdown(conversation)
            )
            (out / file_name(conversation, fmt)).write_text(text + "\n", encoding="utf-8")
        self.stdout.write(f"Wrote {len(conversations)} conversation(s) to {out}")

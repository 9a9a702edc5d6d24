"""Conversations as files: Markdown to read, JSON to keep or move, a zip of everything.

The same shapes for the page's downloads and for `manage.py export_conversations`. Only
the operator's export carries the role's system prompt: users never see it.
"""

import io
import json
import re
import zipfile
from collections.abc import Iterable
from typing import Any

from django.urls import reverse

from conversations.models import Conversation


def as_json(conversation: Conversation, *, system_prompt: bool = False) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": str(conversation.pk),
        "title": conversation.title,
        "role": conversation.role.slug,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
    }
    if system_prompt:
        document["system_prompt"] = conversation.system_prompt
    # The user's own words (sent after the role's prompt), and the model's summary of their
    # earlier messages: theirs to keep, in either export.
    document["custom_instructions"] = conversation.custom_instructions
    document["system_note"] = conversation.system_note
    document["summary"] = conversation.summary
    document["messages"] = [
        {
            # Every branch: each message names the one it follows (conversations.branches).
            "id": message.pk,
            "parent_id": message.parent_id,
            "author": message.author,
            "content": message.content,
            "reasoning": message.reasoning,
            # Links to the images, which open for their owner only (signed in).
            "images": [reverse("chat:attachment", args=[a.pk]) for a in message.attachments.all()],
            "status": message.status,
            "error": message.error,
            # Not on the branch shown (another version of a turn, or what followed one).
            "superseded": message.superseded,
            "created_at": message.created_at.isoformat(),
        }
        for message in conversation.messages.all()
    ]
    return document


def as_markdown(conversation: Conversation) -> str:
    lines = [
        f"# {conversation.title or 'Untitled conversation'}",
        "",
        f"- Role: {conversation.role.name} (`{conversation.role.slug}`)",
        f"- Started: {conversation.created_at:%Y-%m-%d %H:%M} UTC",
        f"- Id: {conversation.pk}",
        "",
    ]
    # The branch shown (from the prefetched messages: filter() would ask again).
    for message in (m for m in conversation.messages.all() if not m.superseded):
        who = "You" if message.author == "user" else conversation.role.name
        note = "" if message.status == "complete" else f" *({message.status})*"
        lines += [f"## {who}{note}", ""]
        if message.reasoning:
            # A quote, so the thinking reads apart from the answer in any Markdown viewer.
            lines += [
                "> *Thinking*",
                ">",
                *(f"> {line}".rstrip() for line in message.reasoning.splitlines()),
                "",
            ]
        lines += [message.content or f"*{message.error}*", ""]
        for number, image in enumerate(message.attachments.all(), start=1):
            lines += [f"[Image {number}]({reverse('chat:attachment', args=[image.pk])})", ""]
    return "\n".join(lines)


def as_text(conversation: Conversation, fmt: str, *, system_prompt: bool = False) -> str:
    """The conversation as one file's text: `fmt` is "md" or "json"."""
    if fmt == "json":
        return (
            json.dumps(as_json(conversation, system_prompt=system_prompt), ensure_ascii=False, indent=2)
            + "\n"
        )
    return as_markdown(conversation) + "\n"


def file_name(conversation: Conversation, extension: str) -> str:
    slug = re.sub(r"[^\w-]+", "-", conversation.title.lower()).strip("-")[:40] or "conversation"
    return f"{conversation.created_at:%Y-%m-%d}-{slug}-{str(conversation.pk)[:8]}.{extension}"


def as_zip(conversations: Iterable[Conversation]) -> bytes:
    """Every conversation twice, as `json/NAME.json` and `markdown/NAME.md`, and one
    `conversations.json` holding them all (what an import reads)."""
    buffer = io.BytesIO()
    documents = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for conversation in conversations:
            documents.append(as_json(conversation))
            archive.writestr(f"json/{file_name(conversation, 'json')}", as_text(conversation, "json"))
            archive.writestr(f"markdown/{file_name(conversation, 'md')}", as_text(conversation, "md"))
        everything = {"conversations": documents}
        archive.writestr("conversations.json", json.dumps(everything, ensure_ascii=False, indent=2) + "\n")
    return buffer.getvalue()

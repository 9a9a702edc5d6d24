"""Reading the files a user imports: Chatsite's own JSON, and a ChatGPT data export.

Each format becomes the same plain shape (`Imported`): a title, when it was written, and
its turns as they were last shown. Nothing here touches the database; an unreadable
file raises ImportRefused with a message for the user, before anything is saved.

- Chatsite: what the page's downloads write (conversations.export): one conversation,
  or `{"conversations": [...]}` (the zip's conversations.json).
- ChatGPT: `conversations.json` of its data export, a list of conversations whose
  messages are a tree (`mapping`); only the branch that was on screen (from
  `current_node` up to the root) is kept, and only what the user and the model wrote
  as text (no system or tool messages, no hidden ones, no images).

Either may come as the JSON file itself or in the export's zip.
"""

import io
import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.utils.translation import gettext as _

from conversations.copies import FINISHED_STATUSES, IMAGE_LEFT_OUT, Turn
from conversations.models import Message

IMPORT_MAX_CONVERSATIONS = 10_000
IMPORT_MAX_MESSAGES = 200_000
MESSAGE_MAX_CHARS = 200_000  # a reply is not limited like a typed message; longer is cut
TITLE_MAX_CHARS = 200
ZIPPED_NAME = "conversations.json"
# ChatGPT's search answers mark their citations with private-use characters around the
# source's id ("\ue200cite\ue202turn0search0\ue201"): left, they read as junk.
_CITATION = re.compile("\ue200[^\ue201]*\ue201|[\ue200-\ue2ff]")


class ImportRefused(Exception):
    """The file cannot be imported; `message` says why, to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Imported:
    key: str  # "chatgpt:<id>" or "chatsite:<id>": the same file imported again is known by it
    title: str
    role_slug: str  # "" for the default role
    created_at: datetime | None
    updated_at: datetime | None
    turns: tuple[Turn, ...]


def imported_from(data: bytes, *, max_bytes: int) -> list[Imported]:
    """The conversations in an uploaded file (JSON, or a zip holding conversations.json
    of at most `max_bytes`)."""
    document = _json_of(_unzipped(data, max_bytes))
    if isinstance(document, list):
        found = [_from_chatgpt(item, n) for n, item in enumerate(document, start=1)]
    elif isinstance(document, dict) and isinstance(document.get("conversations"), list):
        found = [_from_chatsite(item, n) for n, item in enumerate(document["conversations"], start=1)]
    elif isinstance(document, dict) and isinstance(document.get("messages"), list):
        found = [_from_chatsite(document, 1)]
    else:
        raise ImportRefused(_("This is not a Chatsite export or a ChatGPT conversations.json."))
    if len(found) > IMPORT_MAX_CONVERSATIONS:
        raise ImportRefused(
            _("A file can hold at most %(count)s conversations.") % {"count": IMPORT_MAX_CONVERSATIONS}
        )
    if sum(2 * len(conversation.turns) for conversation in found) > IMPORT_MAX_MESSAGES:
        raise ImportRefused(_("A file can hold at most %(count)s messages.") % {"count": IMPORT_MAX_MESSAGES})
    return [conversation for conversation in found if conversation.turns]


def _unzipped(data: bytes, max_bytes: int) -> bytes:
    if not data.startswith(b"PK"):
        return data
    too_large = ImportRefused(_("The conversations.json in the zip is too large."))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [name for name in archive.namelist() if name.rsplit("/", 1)[-1] == ZIPPED_NAME]
            if not names:
                raise ImportRefused(_("The zip holds no conversations.json."))
            info = archive.getinfo(min(names, key=len))  # the top-level one
            if info.file_size > max_bytes:
                raise too_large
            with archive.open(info) as member:
                # Read one byte past the limit: a size the zip understates is found out too.
                unzipped = member.read(max_bytes + 1)
    except ImportRefused:
        raise
    except Exception:
        raise ImportRefused(_("The zip file cannot be read.")) from None
    if len(unzipped) > max_bytes:
        raise too_large
    return unzipped


def _json_of(data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ImportRefused(_("The file is not valid JSON.")) from None


def _refused(number: int, what: str) -> ImportRefused:
    return ImportRefused(
        _("Conversation %(number)s in the file cannot be read: %(what)s") % {"number": number, "what": what}
    )


def _text(value: object, number: int, *, limit: int = MESSAGE_MAX_CHARS) -> str:
    """The text as it can be stored: one message that cannot (a NUL, a lone surrogate, a
    book) is mended, not the reason a whole export is refused."""
    if not isinstance(value, str):
        raise _refused(number, _("a text is not plain text."))
    text = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return text[:limit]


def _title(value: object, number: int) -> str:
    if value is None:
        return ""
    return " ".join(_text(value, number).split())[:TITLE_MAX_CHARS]


def _str(value: object) -> str:
    """A field that should be a name ("user", "text"); anything else is no name."""
    return value if isinstance(value, str) else ""


def _time(value: object) -> datetime | None:
    """A Unix time (ChatGPT) or an ISO 8601 one (Chatsite); None when there is none to read."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            parsed = datetime.fromtimestamp(value, tz=UTC)
        elif isinstance(value, str):
            parsed = datetime.fromisoformat(value)
            parsed = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    # A date at the calendar's very ends cannot be stored in every time zone.
    return parsed if 1900 <= parsed.year <= 9000 else None


def _turns(messages: Sequence[tuple[str, str, str]]) -> tuple[Turn, ...]:
    """(author, text, status) in order -> turns: each question with what answered it. An
    answer before any question has nothing to answer and is left out; answers in a row
    (a reply in several parts) are one."""
    turns: list[list[str]] = []
    for author, raw, status in messages:
        text = _CITATION.sub("", raw)
        if author == "user":
            turns.append([text, "", Message.Status.COMPLETE])
        elif turns:
            last = turns[-1]
            last[1] = f"{last[1]}\n\n{text}" if last[1] else text
            last[2] = status
    return tuple(Turn(question, answer, status) for question, answer, status in turns)


# --- Chatsite ------------------------------------------------------------------------------


def _from_chatsite(item: object, number: int) -> Imported:
    if not isinstance(item, dict) or not isinstance(item.get("messages"), list):
        raise _refused(number, _("it has no messages."))
    messages = []
    for message in item["messages"]:
        if not isinstance(message, dict):
            raise _refused(number, _("a message is not an object."))
        author, status = _str(message.get("author")), _str(message.get("status")) or Message.Status.COMPLETE
        if author not in {"user", "assistant"}:
            raise _refused(number, _("a message has no author."))
        if message.get("superseded") is True:
            continue  # an earlier version of a turn, set aside
        if author == "assistant" and status not in FINISHED_STATUSES:
            continue  # a failed reply, or one still being written when it was exported
        text = _text(message.get("content", ""), number)
        if not text and author == "user" and message.get("images"):
            text = str(IMAGE_LEFT_OUT)
        if text:
            messages.append((author, text, status))
    ident = item.get("id")
    role = item.get("role")
    return Imported(
        key=f"chatsite:{_text(ident, number, limit=100)}" if ident else "",
        title=_title(item.get("title"), number),
        role_slug=role if isinstance(role, str) else "",
        created_at=_time(item.get("created_at")),
        updated_at=_time(item.get("updated_at")),
        turns=_turns(messages),
    )


# --- ChatGPT -------------------------------------------------------------------------------


def _chatgpt_branch(mapping: dict[str, Any], current: object, number: int) -> list[dict[str, Any]]:
    """The messages from the root down to `current` (the branch on screen), oldest first."""
    if not isinstance(current, str) or current not in mapping:
        # No current node: the last leaf there is (a tree with one branch has one).
        leaves = [key for key, node in mapping.items() if isinstance(node, dict) and not node.get("children")]
        if not leaves:
            raise _refused(number, _("its messages have no end."))
        current = leaves[-1]
    branch: list[dict[str, Any]] = []
    seen: set[str] = set()
    node_id: object = current
    while isinstance(node_id, str) and node_id in mapping and node_id not in seen:
        seen.add(node_id)
        node = mapping[node_id]
        if not isinstance(node, dict):
            raise _refused(number, _("a message is not an object."))
        if isinstance(node.get("message"), dict):
            branch.append(node["message"])
        node_id = node.get("parent")
    branch.reverse()
    return branch


def _chatgpt_text(message: dict[str, Any], number: int) -> str:
    content = message.get("content")
    if not isinstance(content, dict) or _str(content.get("content_type")) not in {"text", "multimodal_text"}:
        return ""  # code, tool output, thoughts
    parts = content.get("parts")
    if not isinstance(parts, list):
        return ""
    texts, images = [], False
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])  # what was said in voice mode (audio_transcription)
        elif isinstance(part, dict):
            images = images or _str(part.get("content_type")) == "image_asset_pointer"
    text = _text("\n\n".join(texts).strip(), number)
    return text or (str(IMAGE_LEFT_OUT) if images else "")


def _from_chatgpt(item: object, number: int) -> Imported:
    if not isinstance(item, dict) or not isinstance(item.get("mapping"), dict):
        raise _refused(number, _("it has no messages."))
    messages = []
    for message in _chatgpt_branch(item["mapping"], item.get("current_node"), number):
        author = message.get("author")
        role = _str(author.get("role")) if isinstance(author, dict) else ""
        metadata = message.get("metadata")
        hidden = isinstance(metadata, dict) and metadata.get("is_visually_hidden_from_conversation") is True
        if role not in {"user", "assistant"} or hidden or message.get("recipient", "all") != "all":
            continue
        text = _chatgpt_text(message, number)
        if text:
            messages.append((role, text, Message.Status.COMPLETE))
    ident = item.get("conversation_id") or item.get("id")
    return Imported(
        key=f"chatgpt:{_text(ident, number, limit=100)}" if ident else "",
        title=_title(item.get("title"), number),
        role_slug="",
        created_at=_time(item.get("create_time")),
        updated_at=_time(item.get("update_time")),
        turns=_turns(messages),
    )

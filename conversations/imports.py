"""Importing conversations from a file: all of them, or (for a file that cannot be read,
or a failure midway) none.

Each imported conversation remembers where it came from (`Conversation.import_key`), so
the same file imported again adds only what is new; a Chatsite export of the owner's own
conversations adds nothing.
"""

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from conversations.copies import conversation_from_turns
from conversations.errors import ChatError
from conversations.import_formats import Imported, ImportRefused, imported_from
from conversations.models import Conversation
from conversations.owners import User, owner_id

__all__ = ["ImportRefused", "ImportResult", "conversations_import"]


@dataclass(frozen=True)
class ImportResult:
    created: int
    skipped: int  # already imported, or the owner's own


def conversations_import(*, owner: User, data: bytes) -> ImportResult:
    """Import every conversation in `data` (Chatsite's JSON or zip, or ChatGPT's
    conversations.json or zip) as the owner's. Raises ImportRefused, saving nothing, for
    a file that cannot be read."""
    found = imported_from(data, max_bytes=settings.CHAT_IMPORT_MAX_BYTES)
    try:
        with transaction.atomic():
            return _create_new(owner, found)
    except ChatError as exc:  # no role to give them (conversation_create)
        raise ImportRefused(exc.message) from None
    except IntegrityError:
        # The same file imported at the same moment by another request: that one won.
        raise ImportRefused(
            _("These conversations are being imported already. Try again in a moment.")
        ) from None


def _already_here(owner: User, found: list[Imported]) -> set[str]:
    keys = {conversation.key for conversation in found if conversation.key}
    known = set(
        Conversation.objects.filter(owner_id=owner_id(owner), import_key__in=keys).values_list(
            "import_key", flat=True
        )
    )
    # A Chatsite export of the owner's own conversations: they are here already.
    ids = []
    for key in keys:
        source, _sep, ident = key.partition(":")
        if source == "chatsite":
            try:
                ids.append(uuid.UUID(ident))
            except ValueError:
                continue
    own = Conversation.objects.filter(owner_id=owner_id(owner), pk__in=ids).values_list("pk", flat=True)
    return known | {f"chatsite:{pk}" for pk in own}


def _create_new(owner: User, found: list[Imported]) -> ImportResult:
    skip = _already_here(owner, found)
    created = skipped = 0
    for imported in found:
        if imported.key and imported.key in skip:
            skipped += 1
            continue
        if imported.key:
            skip.add(imported.key)  # twice in one file: once
        conversation_from_turns(
            owner=owner,
            title=imported.title,
            role_slug=imported.role_slug,
            turns=imported.turns,
            import_key=imported.key,
            created_at=imported.created_at,
            updated_at=imported.updated_at,
        )
        created += 1
    return ImportResult(created=created, skipped=skipped)

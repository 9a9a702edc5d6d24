"""Importing conversations from a file: all of them, or (for a file that cannot be read,
or a failure midway) none.

Each imported conversation remembers where it came from (`Conversation.import_key`), so
the same file imported again adds only what is new; a Chatsite export of the owner's own
conversations adds nothing.

The conversations are written BATCH at a time, each batch a transaction of its own: on
SQLite a transaction holds the one write lock, and a 15 MB file took 8.7 s to write, so
one transaction for a file of the largest size allowed would have kept every reply's
saves waiting past their 20 s timeout. A failure midway deletes what the import wrote;
a process killed midway leaves it, and importing the file again adds the rest.

A user's imports run one at a time (a lock in Redis): another one at the same moment
would count the first one's saved batches as there already, and skip them, just before
the first one, failing, deleted them.
"""

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils.translation import gettext as _
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from conversations.copies import conversation_from_turns
from conversations.errors import ChatError
from conversations.import_formats import Imported, ImportRefused, imported_from
from conversations.models import Conversation
from conversations.owners import User, owner_id

__all__ = ["ImportRefused", "ImportResult", "conversations_import"]

BATCH = 50  # conversations written in one transaction
# How long the lock outlives its import's last batch: renewed at each batch, so an import
# of any size keeps it, and one whose process was killed holds its owner back this long.
LOCK_SECONDS = 120
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportResult:
    created: int
    skipped: int  # already imported, or the owner's own


def conversations_import(*, owner: User, data: bytes) -> ImportResult:
    """Import every conversation in `data` (Chatsite's JSON or zip, or ChatGPT's
    conversations.json or zip) as the owner's. Raises ImportRefused, saving nothing, for
    a file that cannot be read, or while another import of the owner's is running."""
    found = imported_from(data, max_bytes=settings.CHAT_IMPORT_MAX_BYTES)
    created: list[uuid.UUID] = []
    with _one_at_a_time(owner) as still_running:
        try:
            skipped = _create_new(owner, found, created, still_running)
        except ChatError as exc:  # no role to give them (conversation_create)
            _undo(created)
            raise ImportRefused(exc.message) from None
        except IntegrityError:
            # The same file imported at the same moment by another request (with Redis
            # down, the lock let both in): that one won.
            _undo(created)
            raise ImportRefused(
                _("These conversations are being imported already. Try again in a moment.")
            ) from None
        except BaseException:
            _undo(created)
            raise
    return ImportResult(created=len(created), skipped=skipped)


@contextmanager
def _one_at_a_time(owner: User) -> Iterator[Callable[[], None]]:
    """Hold the owner's import lock while the block runs, or raise ImportRefused when
    another of their imports holds it. The block calls what it is given after each batch,
    to keep the lock for LOCK_SECONDS more.

    With Redis unreachable the import goes ahead unlocked: the race is rare, an outage
    should not stop imports, and the import key still stops a conversation being saved twice."""
    lock = get_redis_connection("default").lock(
        f"chatsite:import:{owner_id(owner)}", timeout=LOCK_SECONDS, blocking=False
    )
    held: bool | None
    try:
        held = lock.acquire()
    except RedisError:
        held = None  # no lock to hold
    if held is False:
        raise ImportRefused(_("Another import is running. Try again when it has finished."))

    def still_running() -> None:
        if held:
            # Lost (Redis restarted, or a batch outlasted it): the import goes on.
            with suppress(RedisError):
                lock.reacquire()

    try:
        yield still_running
    finally:
        if held:
            with suppress(RedisError):  # down, or lost: then it has expired or will
                lock.release()


def _undo(created: list[uuid.UUID]) -> None:
    """Delete what an import that failed midway wrote (its messages go with them)."""
    try:
        for start in range(0, len(created), BATCH):
            Conversation.objects.filter(pk__in=created[start : start + BATCH]).delete()
    except DatabaseError:
        # Left as it is: importing the file again adds only the conversations not here.
        logger.exception("An import failed midway, and %d of its conversations stay", len(created))


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


def _create_new(
    owner: User, found: list[Imported], created: list[uuid.UUID], still_running: Callable[[], None]
) -> int:
    """Write the conversations not here yet, adding each one's id to `created` once its
    batch is saved (and calling `still_running`); the number skipped."""
    skip = _already_here(owner, found)
    new: list[Imported] = []
    for imported in found:
        if imported.key and imported.key in skip:
            continue
        if imported.key:
            skip.add(imported.key)  # twice in one file: once
        new.append(imported)
    for start in range(0, len(new), BATCH):
        with transaction.atomic():
            batch = [
                conversation_from_turns(
                    owner=owner,
                    title=imported.title,
                    role_slug=imported.role_slug,
                    turns=imported.turns,
                    import_key=imported.key,
                    created_at=imported.created_at,
                    updated_at=imported.updated_at,
                ).pk
                for imported in new[start : start + BATCH]
            ]
        created += batch
        still_running()
    return len(found) - len(new)

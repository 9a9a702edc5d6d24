"""The objects a route or a socket action can name: one registry of kinds, each with the
factory that makes a user's real objects of that kind.

Every object the victim owns carries a unique marker in its text fields (a number in
a user limit, which has no text); the sweep fails when any byte of a marker comes back
to somebody else. The attacker gets the same objects, to fill the parameters that do
not carry the victim's object in a probe.
"""

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import models
from django.utils import timezone
from django_redis import get_redis_connection

from conversations import replylog
from conversations.models import (
    ApiToken,
    Attachment,
    Conversation,
    Feedback,
    Folder,
    Message,
    SavedPrompt,
    UserInstructions,
    UserLimit,
)
from conversations.sending import message_send
from conversations.services import conversation_create
from conversations.tokens import api_token_create
from sharing.models import SharedLink
from sharing.services import share_publish
from tests.fake_openai import FakeOpenAI, Reply
from tests.images import png

# The victim's reply being written while the sweep runs: its first token is on screen,
# the rest comes only when the test releases the fake provider.
BUSY_REST = " and the rest of it"


class Owner:
    """A user's objects, made on first use; `markers` maps each marker to what it marks."""

    def __init__(self, user: User, *, fake: FakeOpenAI | None = None, markers: dict[str, str]) -> None:
        self.user = user
        self.fake = fake  # given: the owner also has a conversation whose reply is being written
        self.markers = markers
        self.raw_tokens: list[str] = []
        self._quiet: tuple[Conversation, Message, list[Message]] | None = None
        self._busy: tuple[Conversation, Message, Message] | None = None
        self.busy_text = ""  # all the busy reply will say once the fake is released

    def mark(self, what: str) -> str:
        return marker(self.markers, what)

    async def quiet(self) -> tuple[Conversation, Message, list[Message]]:
        """A finished conversation: a question and two versions of its answer (the first set aside)."""
        if self._quiet is None:
            self._quiet = await sync_to_async(self._quiet_create)()
        return self._quiet

    def _quiet_create(self) -> tuple[Conversation, Message, list[Message]]:
        conversation = conversation_create(
            owner=self.user, role_slug="teacher", title=self.mark("conversation title")
        )
        conversation.system_prompt = self.mark("conversation system prompt")
        conversation.custom_instructions = self.mark("conversation's custom instructions")
        conversation.system_note = self.mark("conversation's note")
        conversation.summary = self.mark("summary of earlier messages")
        conversation.save(update_fields=["system_prompt", "custom_instructions", "system_note", "summary"])
        question = Message.objects.create(
            conversation=conversation, author="user", content=self.mark("message"), turn=1
        )
        first = Message.objects.create(
            conversation=conversation,
            author="assistant",
            content=self.mark("first version of a reply"),
            status=Message.Status.ERROR,
            error=self.mark("reply error"),
            turn=1,
            parent=question,
            reply_to=question,
            superseded=True,
        )
        second = Message.objects.create(
            conversation=conversation,
            author="assistant",
            content=self.mark("reply"),
            turn=1,
            parent=question,
            reply_to=question,
            # What its request held: the system message with his markers, and his question.
            sent={"system": self.mark("system message sent"), "messages": [question.pk], "images": False},
        )
        # The summary stands for the question: its mark shows before the answer.
        Conversation.objects.filter(pk=conversation.pk).update(summary_until=question.pk)
        return conversation, question, [first, second]

    async def busy(self) -> tuple[Conversation, Message, Message] | None:
        """A conversation whose reply is being written (its reply slot held), or None without a fake."""
        if self.fake is None:
            return None
        if self._busy is None:
            first_token = self.mark("reply being written")
            self.busy_text = first_token + BUSY_REST
            self.fake.queue_reply(Reply(tokens=[first_token, BUSY_REST], hang_after_tokens=1))
            conversation = await sync_to_async(conversation_create)(
                owner=self.user, role_slug="teacher", title=self.mark("busy conversation title")
            )
            exchange = await message_send(
                owner=self.user, conversation_id=conversation.pk, content=self.mark("busy message")
            )
            await _shown(exchange.reply.pk, first_token)
            self._busy = conversation, exchange.user_message, exchange.reply
        return self._busy


# What every marker starts with: the text the sweep searches for (three letters, so a
# search looks it up in the trigram index).
SEARCHED = "zqv"


def marker(markers: dict[str, str], what: str) -> str:
    """A fresh marker: letters and hex only, so no escaping (HTML, JSON, URL) changes it."""
    value = f"{SEARCHED}{what.split()[0]}{secrets.token_hex(6)}"
    markers[value] = what
    return value


async def _shown(reply_id: int, text: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while (await sync_to_async(replylog.snapshot)(reply_id=reply_id)).text != text:
        if time.monotonic() > deadline:
            raise AssertionError(f"the busy reply never showed {text!r}")
        await asyncio.sleep(0.02)


# --- The factories ------------------------------------------------------------------------


async def conversations(owner: Owner) -> list[models.Model]:
    """The quiet and busy ones, and one pinned and archived: a list that leaves out the
    archived or lists pins apart must scope those reads to their owner too."""
    quiet, _question, _replies = await owner.quiet()
    busy = await owner.busy()
    put_away = await sync_to_async(conversation_create)(
        owner=owner.user, role_slug="teacher", title=owner.mark("archived conversation title")
    )
    await Conversation.objects.filter(pk=put_away.pk).aupdate(
        pinned_at=timezone.now(), archived_at=timezone.now()
    )
    pinned = await sync_to_async(conversation_create)(
        owner=owner.user, role_slug="teacher", title=owner.mark("pinned conversation title")
    )
    await Conversation.objects.filter(pk=pinned.pk).aupdate(pinned_at=timezone.now())
    return [quiet, *([busy[0]] if busy else []), put_away, pinned]


async def user_messages(owner: Owner) -> list[models.Model]:
    _quiet, question, _replies = await owner.quiet()
    busy = await owner.busy()
    return [question, *([busy[1]] if busy else [])]


async def replies(owner: Owner) -> list[models.Model]:
    _quiet, _question, versions = await owner.quiet()
    busy = await owner.busy()
    return [*versions, *([busy[2]] if busy else [])]


async def feedbacks(owner: Owner) -> list[models.Model]:
    _quiet, _question, versions = await owner.quiet()
    given = await Feedback.objects.acreate(reply=versions[-1], rating=-1, comment=owner.mark("feedback"))
    return [given]


async def api_tokens(owner: Owner) -> list[models.Model]:
    token, raw = await sync_to_async(api_token_create)(user=owner.user, name=owner.mark("token name"))
    owner.raw_tokens.append(raw)
    owner.markers[raw.lower()] = "API token"
    owner.markers[token.key_hash.lower()] = "API token hash"
    return [token]


async def user_limits(owner: Owner) -> list[models.Model]:
    # No text field: a number nothing else on a page can be (no timestamp reaches 2e9 before 2033).
    daily = 2_000_000_000 + secrets.randbelow(147_000_000)
    owner.markers[str(daily)] = "user limit"
    limit = await UserLimit.objects.acreate(
        user=owner.user, messages_per_minute=0, concurrent_replies=0, daily_tokens=daily
    )
    return [limit]


async def instructions(owner: Owner) -> list[models.Model]:
    given = await UserInstructions.objects.acreate(user=owner.user, text=owner.mark("custom instructions"))
    return [given]


async def saved_prompts(owner: Owner) -> list[models.Model]:
    given = await SavedPrompt.objects.acreate(
        owner=owner.user, title=owner.mark("prompt title"), text=owner.mark("prompt text")
    )
    return [given]


async def folders(owner: Owner) -> list[models.Model]:
    """A folder with a conversation in it: a folder listed, opened or offered in a move
    form to anyone else leaks its name or the conversation's title."""
    folder = await Folder.objects.acreate(owner=owner.user, name=owner.mark("folder name"))
    inside = await sync_to_async(conversation_create)(
        owner=owner.user, role_slug="teacher", title=owner.mark("conversation in a folder title")
    )
    await Conversation.objects.filter(pk=inside.pk).aupdate(folder=folder)
    return [folder]


async def shared_links(owner: Owner) -> list[models.Model]:
    """The quiet conversation shared, naming its owner: the copy holds his markers, and
    its token is one too (nobody else may learn it)."""
    quiet, _question, _replies = await owner.quiet()
    await owner_named(owner)
    link, _created = await sync_to_async(share_publish)(
        owner=owner.user, conversation_id=quiet.pk, show_name=True
    )
    owner.markers[link.token.lower()] = "share token"
    return [link]


async def owner_named(owner: Owner) -> None:
    user = owner.user
    if not user.first_name:
        user.first_name, user.last_name = owner.mark("first name"), owner.mark("last name")
        await user.asave(update_fields=["first_name", "last_name"])


async def users(owner: Owner) -> list[models.Model]:
    await owner_named(owner)
    user = owner.user
    user.email = f"{owner.mark('email')}@example.com"
    await user.asave(update_fields=["email"])
    return [user]


async def attachments(owner: Owner) -> list[models.Model]:
    """An image sent with the owner's message, and one uploaded and not sent yet. Stored as
    given (not re-encoded), so their bytes carry a marker: a file served to anyone else leaks it."""
    _quiet, question, _replies = await owner.quiet()
    made: list[models.Model] = []
    for message in (question, None):
        marked = png() + owner.mark("image file").encode()
        attachment = Attachment(
            owner=owner.user, message=message, content_type="image/png", width=64, height=48, size=len(marked)
        )
        await sync_to_async(attachment.file.save)("image.png", ContentFile(marked), save=False)
        await attachment.asave()
        made.append(attachment)
    return made


@dataclass(frozen=True)
class Kind:
    model: type[models.Model]
    make: Callable[[Owner], Awaitable[list[models.Model]]]
    # What a URL or a field names the object by, when not its primary key.
    ident: Callable[[Any], str | int] | None = None
    # The identifier is a key (a shared link's token): whoever sends it holds the object,
    # so no probe carries the victim's, and finding it in an answer is a leak.
    key: bool = False


def _token(link: SharedLink) -> str:
    return link.token


# Every kind of object a route parameter or socket field may name. A parameter declared
# with a kind missing here fails the sweep: add the kind and its factory first.
KINDS: dict[str, Kind] = {
    "conversation": Kind(Conversation, conversations),
    "message": Kind(Message, user_messages),
    "reply": Kind(Message, replies),
    "feedback": Kind(Feedback, feedbacks),
    "attachment": Kind(Attachment, attachments),
    "api_token": Kind(ApiToken, api_tokens),
    "user_limit": Kind(UserLimit, user_limits),
    "instructions": Kind(UserInstructions, instructions),
    "prompt": Kind(SavedPrompt, saved_prompts),
    "folder": Kind(Folder, folders),
    "share": Kind(SharedLink, shared_links),
    "share_token": Kind(SharedLink, shared_links, ident=_token, key=True),
    "user": Kind(User, users),
}
# An admin page's object: whatever model that page edits.
ANY_KIND = "any"


@dataclass(frozen=True)
class Thing:
    """One object, its kind, and the identifier a URL, query or frame names it by."""

    kind: str
    obj: models.Model

    @property
    def ident(self) -> str | int:
        kind = KINDS.get(self.kind)
        if kind is not None and kind.ident is not None:
            return kind.ident(self.obj)
        pk = self.obj.pk
        return pk if isinstance(pk, int) else str(pk)

    @property
    def model(self) -> type[models.Model]:
        return type(self.obj)

    def is_a(self, kind: str) -> bool:
        """Whether a parameter of `kind` would look this object up (same table, so same ids)."""
        return kind == ANY_KIND or (kind in KINDS and KINDS[kind].model is self.model)

    def __str__(self) -> str:
        return f"{self.kind} {self.ident}"


async def things_of(owner: Owner) -> list[Thing]:
    return [
        Thing(kind, obj) for kind, entry in KINDS.items() if not entry.key for obj in await entry.make(owner)
    ]


@dataclass
class World:
    """The victim's objects, the attacker's, and how to tell whether the victim's changed."""

    victim: User
    attacker: User
    victims: list[Thing]
    markers: dict[str, str]  # marker (lowercase) -> what it marks
    attacker_owner: Owner
    own: dict[str, Thing] = field(default_factory=dict)  # the attacker's object of each kind
    busy_reply: Message | None = None  # the victim's reply being written
    busy_text: str = ""  # what it says once the fake provider is released

    @property
    def busy_conversation_id(self) -> object:
        return self.busy_reply.conversation_id if self.busy_reply else None

    @property
    def attacker_token(self) -> str:
        return self.attacker_owner.raw_tokens[0]

    async def own_thing(self, kind: str) -> Thing:
        """The attacker's object of this kind, made again if a probe deleted it (his own to delete)."""
        thing = self.own.get(kind)
        if thing is None or not await type(thing.obj)._default_manager.filter(pk=thing.obj.pk).aexists():
            made = await KINDS[kind].make(self._fresh_attacker())
            thing = self.own[kind] = Thing(kind, made[0])
        return thing

    def _fresh_attacker(self) -> Owner:
        fresh = Owner(self.attacker, markers={})
        fresh.raw_tokens = self.attacker_owner.raw_tokens
        return fresh

    def leaks_in(self, blob: bytes) -> list[str]:
        """What of the victim's shows in `blob` (any marker, case-insensitively)."""
        text = blob.lower()
        return sorted({what for needle, what in self.markers.items() if needle.encode() in text})

    async def state(self) -> tuple[Any, ...]:
        return await sync_to_async(victim_state)(self.victim)


STATE_PARTS = (
    "conversations",
    "messages",
    "images",
    "tokens",
    "limits",
    "instructions",
    "prompts",
    "folders",
    "shares",
    "account",
    "live",
    "slots",
)


def state_change(before: tuple[Any, ...], after: tuple[Any, ...]) -> str:
    """What differs between two victim_state()s, to say in a finding."""
    return "; ".join(
        f"{name}: {old!r:.300} -> {new!r:.300}"
        for name, old, new in zip(STATE_PARTS, before, after, strict=True)
        if old != new
    )


def victim_state(user: User) -> tuple[Any, ...]:
    """Everything any request could change about a user's data, in the database and in Redis."""
    conversations = list(
        Conversation.objects.filter(owner=user)
        .order_by("pk")
        .values_list(
            "pk",
            "title",
            "role_id",
            "system_prompt",
            "custom_instructions",
            "system_note",
            "provider",
            "model",
            "temperature",
            "pinned_at",
            "archived_at",
            "folder_id",
            "updated_at",
        )
    )
    messages = list(
        Message.objects.filter(conversation__owner=user)
        .order_by("pk")
        .values_list("pk", "conversation_id", "author", "content", "status", "error", "turn", "superseded")
    )
    # Nobody attached the victim's images to a message of theirs, or deleted one.
    images = list(
        Attachment.objects.filter(owner=user).order_by("pk").values_list("pk", "message_id", "file")
    )
    tokens = list(
        ApiToken.objects.filter(user=user).values_list("pk", "name", "key_hash", "last_used_at", "revoked_at")
    )
    limits = list(
        UserLimit.objects.filter(user=user).values_list(
            "pk", "messages_per_minute", "concurrent_replies", "daily_tokens"
        )
    )
    instructions = list(UserInstructions.objects.filter(user=user).values_list("pk", "text"))
    prompts = list(SavedPrompt.objects.filter(owner=user).order_by("pk").values_list("pk", "title", "text"))
    folder_rows = list(Folder.objects.filter(owner=user).order_by("pk").values_list("pk", "name"))
    shares = list(
        SharedLink.objects.filter(conversation__owner=user)
        .order_by("pk")
        .values_list("pk", "token", "title", "messages", "author_name", "updated_at")
    )
    account = User.objects.filter(pk=user.pk).values_list(
        "username", "password", "email", "first_name", "is_active", "is_staff", "last_login"
    )
    pipe = get_redis_connection("default").pipeline(transaction=False)
    for pk, *_rest in messages:
        pipe.exists(replylog.stop_key(pk))  # nobody asked the reply to stop
        pipe.xlen(replylog.log_key(pk))  # nobody wrote into its log
    for conversation_pk, *_rest in conversations:
        pipe.get(replylog.active_key(conversation_pk))  # nobody else holds its reply slot
    redis = pipe.execute()
    live = redis[: 2 * len(messages)]
    slots = redis[2 * len(messages) :]
    return (
        conversations,
        messages,
        images,
        tokens,
        limits,
        instructions,
        prompts,
        folder_rows,
        shares,
        list(account),
        live,
        slots,
    )

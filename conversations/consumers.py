"""The chat socket: protocol glue between htmx's ws extension and the services.

`receive()` never waits for a reply: message_send() starts the generation job and
returns, and a separate watch task follows the reply's log and sends fragments.
Closing the socket cancels only the watch task; the reply goes on being written.
"""

import asyncio
import json
import logging
from contextlib import suppress
from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation.trans_real import parse_accept_lang_header
from redis.exceptions import RedisError

from conversations import hub, replylog, sending, services, titles
from conversations.announce import conversation_group
from conversations.branches import branch_select
from conversations.db import in_thread, in_write_thread
from conversations.errors import database_busy_message
from conversations.metrics import DATABASE_ERRORS
from conversations.models import Conversation, Message
from conversations.rendering import ReplyStream
from conversations.selectors import (
    Branch,
    conversation_get,
    exchange_get,
    message_branches,
    message_page,
    message_streaming,
)
from providers.selectors import ModelPick

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


def language_from_scope(scope: dict[str, Any]) -> str:
    """The page's language for a socket: the language cookie, else Accept-Language."""
    cookie = scope.get("cookies", {}).get(settings.LANGUAGE_COOKIE_NAME)
    candidates = [cookie] if cookie else []
    headers = dict(scope.get("headers", []))
    accept = headers.get(b"accept-language", b"").decode("latin-1")
    candidates += [lang for lang, _q in parse_accept_lang_header(accept)]
    for candidate in candidates:
        try:
            return translation.get_supported_language_variant(candidate)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


def attachment_ids(value: object) -> list[int]:
    """The images a send names: one id, several (the form's repeated field), or none."""
    values = value if isinstance(value, list) else [value] if value not in (None, "") else []
    ids = [str(v) for v in values]
    if not all(v.isascii() and v.isdigit() and len(v) <= 18 for v in ids):
        raise services.ChatError(
            _("An attached image is no longer available. Attach it again."), code="invalid_attachment"
        )
    return [int(v) for v in ids]


def message_id_field(data: dict[str, Any], name: str) -> int | None:
    """A message named in a socket message: its id, or None when none is given."""
    value = str(data.get(name) or "")
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise services.ChatError(
            _("That message is no longer shown. Reload the page."), code="invalid_target"
        )
    return int(value)


def _finished_reply(*, reply_id: int) -> tuple[Message, Branch | None]:
    finished = Message.objects.select_related("conversation").get(pk=reply_id)
    return finished, message_branches(conversation=finished.conversation, messages=[finished]).get(
        finished.pk
    )


class ChatConsumer(AsyncWebsocketConsumer):
    watch_task: asyncio.Task[None] | None = None
    watching: int | None = None  # the reply this socket is showing live
    group: str | None = None  # the conversation this socket shows, as a channel-layer group

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # The socket's watch is a task of its own: it ends with the socket, also when
            # the server cancels the socket as it stops, instead of writing to a closed one.
            if self.watch_task is not None:
                self.watch_task.cancel()

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Everything a socket says is in its page's language. The watch task is
        # created inside this block, so it inherits the language too.
        with translation.override(language_from_scope(self.scope)):
            await super().dispatch(message)

    async def connect(self) -> None:
        self.user = self.scope["user"]
        if not self.user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        conversation_id = self.scope["url_route"]["kwargs"].get("conversation_id")
        streaming: Message | None = None
        if conversation_id is not None:
            try:
                conversation = await in_thread(conversation_get)(
                    owner=self.user, conversation_id=conversation_id
                )
            except Conversation.DoesNotExist:
                await self.close(code=CLOSE_NOT_FOUND)
                return
            streaming = await in_thread(message_streaming)(conversation=conversation)
            await self.join(conversation.pk)
        # Every tab of the user hears of its conversations' new titles. Without Redis the
        # page works on without them, as it did before titles.
        with suppress(RedisError):
            await self.channel_layer.group_add(titles.user_group(self.user.pk), self.channel_name)
        await self.accept()
        if streaming is not None:
            await self.reattach(streaming)

    async def disconnect(self, code: int) -> None:
        if self.watch_task is not None:
            self.watch_task.cancel()
        if self.group is not None:
            # Without Redis it stays a member until channels-redis drops members a day old.
            with suppress(RedisError):
                await self.channel_layer.group_discard(self.group, self.channel_name)
        if self.user.is_authenticated:
            with suppress(RedisError):
                await self.channel_layer.group_discard(titles.user_group(self.user.pk), self.channel_name)

    async def join(self, conversation_id: object) -> None:
        """Hear about replies started in this conversation by other tabs, the API or the terminal."""
        if self.group is None:
            self.group = conversation_group(conversation_id)
            await self.channel_layer.group_add(self.group, self.channel_name)

    async def reply_started(self, event: dict[str, Any]) -> None:
        if event["reply_id"] == self.watching:
            return  # this socket sent the message and already shows the reply
        exchange = await in_thread(exchange_get)(
            owner=self.user, user_message_id=event["user_message_id"], reply_id=event["reply_id"]
        )
        if exchange is None:
            return
        if event.get("replaced"):
            await self.send_conversation(exchange.conversation)
        else:
            await self.send_fragment("chat/frames/sent.html", {"exchange": exchange, "created": False})
        self.watch(exchange.reply, after=replylog.START)

    async def conversation_titled(self, event: dict[str, Any]) -> None:
        """The model named one of the user's conversations: its sidebar item, and the
        heading if this socket shows it."""
        try:
            conversation = await in_thread(conversation_get)(
                owner=self.user, conversation_id=event["conversation_id"]
            )
        except Conversation.DoesNotExist:
            return  # deleted meanwhile
        shown = self.group == conversation_group(conversation.pk)
        await self.send_fragment("chat/frames/titled.html", {"c": conversation, "active": shown})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            data = json.loads(text_data or "")
            if not isinstance(data, dict):
                raise ValueError
        except (ValueError, RecursionError):  # RecursionError: nesting too deep to decode
            await self.send_error(_("That message could not be read. Please try again."))
            return
        action = data.get("action", "send")
        if not isinstance(action, str):
            action = ""  # answered as an unknown action
        try:
            if action == "send":
                await self.send_message(data)
            elif action == "stop":
                seen = str(data.get("seen", ""))
                await services.reply_stop(
                    owner=self.user,
                    conversation_id=data.get("conversation"),
                    seen=int(seen) if seen.isascii() and seen.isdigit() else None,
                )
            elif action in {"regenerate", "edit"}:
                await self.redo(action, data)
            elif action in {"branch", "version"}:  # "version": pages from before branches
                await self.choose_branch(data)
            elif action == "sync":
                await self.sync(data)
            else:
                await self.send_error(_("Unknown action."))
        except services.ChatError as exc:
            await self.send_error(exc.message)
        except Conversation.DoesNotExist:
            await self.send_error(_("This conversation does not exist."))
        except (OperationalError, InterfaceError):
            # Locked past its wait, or down: it passes (chatsite.database_unavailable).
            DATABASE_ERRORS.labels("socket").inc()
            await self.send_error(database_busy_message())

    async def sync(self, data: dict[str, Any]) -> None:
        """A page (re)connected: bring it up to date with its conversation.

        Sent by the page script on every socket open. The page may have been rendered
        while a reply was being written that has ended since, or it may have started its
        conversation on this socket before a reconnect.
        """
        conversation = await in_thread(conversation_get)(
            owner=self.user, conversation_id=data.get("conversation")
        )
        await self.join(conversation.pk)
        streaming = await in_thread(message_streaming)(conversation=conversation)
        if streaming is not None and streaming.pk != self.watching:
            await self.reattach(streaming)
        elif streaming is None and data.get("busy"):
            await self.send_conversation(conversation)

    async def redo(self, action: str, data: dict[str, Any]) -> None:
        """Regenerate a reply, or edit a question (`target`, by default the last one): a new
        branch from there, the old one kept."""
        pick = ModelPick.parse(data.get("model"))
        target = message_id_field(data, "target")
        if action == "regenerate":
            exchange = await sending.reply_regenerate(
                owner=self.user,
                conversation_id=data.get("conversation"),
                reply_id=target,
                pick=pick,
                sender=self.channel_name,
            )
        else:
            exchange = await sending.message_edit(
                owner=self.user,
                conversation_id=data.get("conversation"),
                content=data.get("message"),
                message_id=target,
                pick=pick,
                sender=self.channel_name,
            )
        self.watching = exchange.reply.pk
        await self.send_conversation(exchange.conversation)
        self.watch(exchange.reply, after=replylog.START)

    async def choose_branch(self, data: dict[str, Any]) -> None:
        """Show the branch through another version of a message (`message`; `reply` from
        pages before branches)."""
        chosen_id = message_id_field(data, "message") or message_id_field(data, "reply")
        if chosen_id is None:
            raise services.ChatError(_("Choose a version."), code="invalid_version")
        try:
            chosen = await in_write_thread(branch_select)(
                owner=self.user, conversation_id=data.get("conversation"), message_id=chosen_id
            )
        except Message.DoesNotExist:
            raise services.ChatError(_("That version does not exist."), code="invalid_version") from None
        conversation = await in_thread(conversation_get)(
            owner=self.user, conversation_id=chosen.conversation_id
        )
        await self.send_conversation(conversation)

    async def send_conversation(self, conversation: Conversation) -> None:
        """Send the latest messages again (after the last turn changed); earlier ones load
        as the reader scrolls up, as when the page opened."""

        def load() -> dict[str, Any]:
            page = message_page(conversation=conversation)
            return {
                "conversation": conversation,
                "messages": page.messages,
                "older_than": page.older_than,
                "summary": page.summary,
                "branches": page.branches,
                "streaming": message_streaming(conversation=conversation),
            }

        await self.send_fragment("chat/frames/messages.html", await in_thread(load)())

    async def send_message(self, data: dict[str, Any]) -> None:
        conversation_id = data.get("conversation") or None
        created = conversation_id is None
        if created:
            exchange = await sending.conversation_start(
                owner=self.user,
                role_slug=data.get("role") or None,
                content=data.get("message"),
                pick=ModelPick.parse(data.get("model")),
                attachments=attachment_ids(data.get("attachments")),
                sender=self.channel_name,
            )
            await self.join(exchange.conversation.pk)
        else:
            exchange = await sending.message_send(
                owner=self.user,
                conversation_id=conversation_id,
                content=data.get("message"),
                pick=ModelPick.parse(data.get("model")),
                attachments=attachment_ids(data.get("attachments")),
                sender=self.channel_name,
            )
        self.watching = exchange.reply.pk
        await self.send_fragment("chat/frames/sent.html", {"exchange": exchange, "created": created})
        self.watch(exchange.reply, after=replylog.START)

    async def reattach(self, reply: Message) -> None:
        """Show the text written so far, then follow the rest: no gap, no duplicate."""
        try:
            snapshot = await in_thread(replylog.snapshot)(reply_id=reply.pk)
        except RedisError:  # Redis is down: follow from the start once it is back
            snapshot = replylog.Snapshot(text="", last_id=replylog.START, seq=0, ended=False)
        text = snapshot.text
        await self.send_fragment(
            "chat/frames/reattach.html", {"reply": reply, "text": text, "seq": snapshot.seq}
        )
        self.watch(reply, after=snapshot.last_id, known=text)

    def watch(self, reply: Message, *, after: str, known: str = "") -> None:
        if self.watch_task is not None:
            self.watch_task.cancel()
        self.watching = reply.pk
        self.watch_task = asyncio.get_running_loop().create_task(
            self.follow(reply, after, known), name=f"watch-{reply.pk}"
        )

    async def follow(self, reply: Message, after: str, known: str) -> None:
        try:
            # What the page shows already (the reattach frame rendered the same text). A
            # new reply's is empty; a reattached one's may be long to parse: off the loop.
            stream = (
                await sync_to_async(ReplyStream, thread_sensitive=False)(known) if known else ReplyStream()
            )
            async for event in hub.follow(reply_id=reply.pk, after=after, known=known):
                if event.kind == "delta":
                    await self.send_delta(reply, stream, event.text, event.seq)
                    continue
                # The end, sent while this socket still counts as the reply's watcher: a
                # server stopping waits for its watchers (generation.shutdown) before it
                # closes the sockets, so the page gets the saved reply first.
                finished, branch = await in_thread(_finished_reply)(reply_id=reply.pk)
                await self.send_fragment(
                    "chat/frames/finished.html",
                    {"reply": finished, "conversation": finished.conversation, "branch": branch},
                )
        except Message.DoesNotExist:
            pass  # the conversation was deleted while its reply was being written
        except Exception:
            logger.exception("Watching reply %s failed", reply.pk)
            await self.send_error(_("Lost track of the reply. Reload the page to see it."))

    async def send_delta(self, reply: Message, stream: ReplyStream, text: str, seq: int) -> None:
        """Render the new text: the model's thinking as text; the answer as Markdown, the
        blocks it finished and the unfinished tail again."""

        def render() -> str:
            frame = stream.feed(text)
            # How long it thought: from the reply's start, as the user waited for it.
            thought_ms = (timezone.now() - reply.created_at).total_seconds() * 1000
            return render_to_string(
                "chat/frames/delta.html",
                {**frame.__dict__, "reply": reply, "seq": seq, "thought_ms": thought_ms},
            )

        # On the loop: the frame reads nothing (the unfinished tail is never cached), and
        # rendering holds the GIL wherever it runs; a thread per frame only added ~70 us
        # of hopping to each of the ~1,000 frames a second a busy process sends.
        await self.send(text_data=render())

    async def send_error(self, text: str) -> None:
        await self.send_fragment("chat/frames/error.html", {"text": text})

    async def send_fragment(self, template: str, context: dict[str, Any]) -> None:
        # Rendering may read the Markdown cache (sync Redis): keep it off the event loop.
        html = await sync_to_async(render_to_string, thread_sensitive=False)(template, context)
        await self.send(text_data=html)

"""Titles the model writes. A new conversation is named by its first words at once; when
its first reply is complete the model is asked for a short title in the conversation's
language, which replaces them unless the user has named it meanwhile, and every open tab
of the user is told (the sidebar item and, where it is open, the heading).

A title is a nicety: whatever goes wrong (no provider, an error, a timeout, a reply
stopped or failed), the first words stay and nothing is shown to the user.
"""

import asyncio
import logging
import re
import uuid

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from conversations import generation, llm
from conversations.background import background_settled, background_start
from conversations.db import in_write_thread
from conversations.metrics import DATABASE_ERRORS
from conversations.models import Conversation, Message
from conversations.reasoning import reasoning_split
from conversations.selectors import Exchange
from conversations.text import text_unstorable
from providers.selectors import Endpoint

logger = logging.getLogger(__name__)

TITLE_MAX_WORDS = 6
TITLE_MAX_CHARS = 50
CONTEXT_CHARS = 1500  # of the question and of the answer: enough to tell what it is about
INSTRUCTION = (
    "You name chat conversations. Reply with a title for this conversation and nothing "
    "else: at most 6 words, in the language the user wrote in, without quotes or a full stop."
)
# A Markdown heading's marks, and a "Title:" label, before the title.
_LABEL = re.compile(r"^\s*(?:#+\s+)?(?:(?:title|标题|題名)\s*[:：]\s*)?", re.IGNORECASE)
_EMPHASIS = re.compile(r"^(\*\*|__|\*|_|`)(.+)\1$")  # Markdown around the whole title, in pairs
_QUOTES = "\"'“”‘’「」『』《》 "
_ENDING = ".。!！"


def user_group(user_id: int) -> str:
    """The channel-layer group of every chat socket of one user, in any process."""
    return f"user.{user_id}"


def title_prompt(question: str, answer: str) -> list[llm.ChatMessage]:
    return [
        llm.ChatMessage(role="system", content=INSTRUCTION),
        llm.ChatMessage(
            role="user",
            content=f"User: {question[:CONTEXT_CHARS]}\n\nAssistant: {answer[:CONTEXT_CHARS]}\n\nTitle:",
        ),
    ]


def title_from_model(text: str) -> str:
    """The model's answer as a title: its first line, without a "Title:" label, quotes,
    Markdown or a full stop, at most TITLE_MAX_WORDS words and TITLE_MAX_CHARS characters
    (Chinese has no spaces to count words by); "" when nothing usable is left."""
    _reasoning, answer = reasoning_split(text)
    line = next((line for line in answer.splitlines() if line.strip()), "")
    line = _LABEL.sub("", line, count=1).strip()
    line = _EMPHASIS.sub(r"\2", line).strip(_QUOTES).rstrip(_ENDING).strip(_QUOTES)
    line = _EMPHASIS.sub(r"\2", line)
    line = " ".join(line.split()[:TITLE_MAX_WORDS])
    if len(line) > TITLE_MAX_CHARS:
        line = line[: TITLE_MAX_CHARS - 1].rstrip() + "…"
    return "" if text_unstorable(line) else line


def title_later(exchange: Exchange, *, endpoint: Endpoint | None, model: str) -> None:
    """Once the exchange's reply is complete, have the model title its conversation (in
    the background, in this process: the reply's job runs here)."""
    if not settings.CHAT_TITLES:
        return
    if settings.CHAT_TITLE_MODEL:  # a model of the .env provider, for every conversation
        endpoint, model = None, settings.CHAT_TITLE_MODEL
    background_start(
        _title_write(
            conversation_id=exchange.conversation.pk,
            owner_id=exchange.conversation.owner_id,
            question=exchange.user_message.content,
            reply_id=exchange.reply.pk,
            endpoint=endpoint,
            model=model,
        ),
        name=f"title-{exchange.conversation.pk}",
    )


async def titles_written() -> None:
    """Wait for the titles being written in this process (for tests)."""
    await background_settled()


async def _title_write(
    *,
    conversation_id: uuid.UUID,
    owner_id: int,
    question: str,
    reply_id: int,
    endpoint: Endpoint | None,
    model: str,
) -> None:
    try:
        await generation.wait(reply_id)
        answer = (
            await Message.objects.filter(pk=reply_id, status=Message.Status.COMPLETE)
            .values_list("content", flat=True)
            .afirst()
        )
        if not answer:
            return  # stopped, failed, empty or deleted: the first words stay
        text = await asyncio.wait_for(
            llm.chat_text(
                messages=title_prompt(question, answer), endpoint=endpoint, model=model, temperature=0.2
            ),
            timeout=settings.CHAT_TITLE_TIMEOUT,
        )
        title = title_from_model(text)
        if title and await in_write_thread(_title_save)(conversation_id=conversation_id, title=title):
            await _announce(owner_id=owner_id, conversation_id=conversation_id)
    except (llm.ProviderError, TimeoutError, RedisError, DatabaseError) as exc:
        if isinstance(exc, DatabaseError):
            DATABASE_ERRORS.labels("title").inc()
        # A nicety: never an error anywhere. The first words stay.
        logger.warning("Conversation %s: no title from the model (%r)", conversation_id, exc)
    except Exception:
        logger.exception("Conversation %s: writing its title failed", conversation_id)


def _title_save(*, conversation_id: uuid.UUID, title: str) -> bool:
    """Replace a title Chatsite made; one the user gave (renamed meanwhile) stays. The
    conversation keeps its place in time: naming it is not writing in it."""
    return Conversation.objects.filter(pk=conversation_id, title_auto=True).update(title=title) == 1


async def _announce(*, owner_id: int, conversation_id: uuid.UUID) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(
            user_group(owner_id), {"type": "conversation.titled", "conversation_id": str(conversation_id)}
        )

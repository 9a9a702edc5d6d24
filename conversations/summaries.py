"""Summaries of what no longer fits. When a reply had to be written without a
conversation's earliest messages (conversations.context), the model is asked afterwards,
in the background, for a summary of them, merged with the summary before it; the next
reply is sent the summary in their place. A long stretch is summarised a part at a time,
one part after each reply, each part as much as fits the model's window.

Like a title, a summary is a nicety: whatever goes wrong (no provider, an error, a
timeout), the messages are left out as before, and the next reply tries again.
"""

import asyncio
import logging
import uuid

from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from conversations import generation, llm
from conversations.background import background_settled, background_start
from conversations.db import in_thread, in_write_thread
from conversations.metrics import DATABASE_ERRORS
from conversations.models import Conversation, Message
from conversations.reasoning import reasoning_split
from conversations.selectors import Exchange
from conversations.text import text_unstorable
from conversations.token_count import MESSAGE_FRAMING, text_tokens_estimate
from providers.selectors import Endpoint

logger = logging.getLogger(__name__)

SUMMARY_MAX_WORDS = 250  # asked for; held to an eighth of the window whatever comes back
INSTRUCTION = (
    "You summarise the earlier part of a chat conversation, so that it can go on without "
    f"it. In at most {SUMMARY_MAX_WORDS} words, in the language the user wrote in, keep "
    "what the user asked for and told about themselves, the facts, names, numbers and "
    "decisions, and the questions still open. If an earlier summary is given, merge it "
    "in. Reply with the summary only."
)
PROMPT_TOKENS = 200  # the instruction and the framing around the messages


def summary_later(exchange: Exchange, *, endpoint: Endpoint | None, model: str) -> None:
    """Once the exchange's reply is done, have the model summarise the messages it was
    written without (in the background, in this process: the reply's job runs here)."""
    sent = exchange.reply.sent or {}
    if not settings.CHAT_SUMMARIES or not sent.get("cut"):
        return
    background_start(
        _summary_write(
            conversation_id=exchange.conversation.pk,
            reply_id=exchange.reply.pk,
            first_sent=sent["messages"][0],
            window=int(sent.get("window") or settings.OPENAI_CONTEXT_WINDOW),
            endpoint=endpoint,
            model=model,
        ),
        name=f"summary-{exchange.conversation.pk}",
    )


async def summaries_written() -> None:
    """Wait for the summaries being written in this process (for tests)."""
    await background_settled()


def summary_prompt(previous: str, messages: list[Message]) -> list[llm.ChatMessage]:
    lines = [f"Earlier summary: {previous}", ""] if previous else []
    lines += [f"{'User' if m.author == Message.Author.USER else 'Assistant'}: {m.content}" for m in messages]
    return [
        llm.ChatMessage(role="system", content=INSTRUCTION),
        llm.ChatMessage(role="user", content="\n\n".join(lines) + "\n\nSummary:"),
    ]


def summary_part(
    *, conversation_id: uuid.UUID, first_sent: int, window: int
) -> tuple[Conversation, list[Message]]:
    """The conversation, and the oldest of its messages not yet summarised and not sent
    (before `first_sent`) that fit one summary request of a `window`-token model: whole
    rounds where it can (a part does not end on a question), and the beginning of one
    message bigger than a whole request rather than none."""
    conversation = Conversation.objects.get(pk=conversation_id)
    room = window - settings.CHAT_REPLY_TOKENS - PROMPT_TOKENS - text_tokens_estimate(conversation.summary)
    left_out = conversation.messages.filter(superseded=False, id__lt=first_sent).exclude(content="")
    if conversation.summary_until is not None:
        left_out = left_out.filter(id__gt=conversation.summary_until)
    part: list[Message] = []
    budget = room
    for message in left_out.exclude(status=Message.Status.STREAMING).order_by("id").iterator(chunk_size=100):
        budget -= text_tokens_estimate(message.content) + MESSAGE_FRAMING
        if budget < 0:
            if not part:  # its beginning stands for it (1.5 tokens a character at most)
                message.content = message.content[: max(0, int(room / 1.5))]
                part.append(message)
            break
        part.append(message)
    if len(part) > 1 and part[-1].author == Message.Author.USER:
        part.pop()  # summarised with its answer, next time
    return conversation, part


def summary_from_model(text: str, *, window: int) -> str:
    """The model's answer as a summary: without its thinking, trimmed, and at most an
    eighth of the window (a wordy model's summary must leave room for the messages); ""
    when nothing usable is left."""
    _reasoning, answer = reasoning_split(text)
    summary = answer.strip()
    most = max(1, window // 8)
    tokens = text_tokens_estimate(summary)
    if tokens > most:
        summary = summary[: int(len(summary) * most / tokens)].rstrip() + "…"
    return "" if text_unstorable(summary) else summary


def summary_save(*, conversation_id: uuid.UUID, previous_until: int | None, summary: str, until: int) -> bool:
    """Keep the summary, unless another one was saved meanwhile (another reply's), or the
    branch shown changed meanwhile and its last message is no longer on it (its earlier
    ones are then not either: they are the path to it)."""
    return (
        Conversation.objects.filter(
            pk=conversation_id,
            summary_until=previous_until,
            messages__pk=until,
            messages__superseded=False,
        ).update(summary=summary, summary_until=until)
        == 1
    )


async def _summary_write(
    *,
    conversation_id: uuid.UUID,
    reply_id: int,
    first_sent: int,
    window: int,
    endpoint: Endpoint | None,
    model: str,
) -> None:
    try:
        await generation.wait(reply_id)
        conversation, part = await in_thread(summary_part)(
            conversation_id=conversation_id, first_sent=first_sent, window=window
        )
        if not part:
            return
        text = await asyncio.wait_for(
            llm.chat_text(
                messages=summary_prompt(conversation.summary, part),
                endpoint=endpoint,
                model=model,
                temperature=0.2,
            ),
            timeout=settings.CHAT_SUMMARY_TIMEOUT,
        )
        summary = summary_from_model(text, window=window)
        if summary:
            await in_write_thread(summary_save)(
                conversation_id=conversation_id,
                previous_until=conversation.summary_until,
                summary=summary,
                until=part[-1].pk,
            )
    except (llm.ProviderError, TimeoutError, RedisError, DatabaseError, Conversation.DoesNotExist) as exc:
        if isinstance(exc, DatabaseError):
            DATABASE_ERRORS.labels("summary").inc()
        # A nicety: never an error anywhere. The next reply tries again.
        logger.warning("Conversation %s: no summary from the model (%r)", conversation_id, exc)
    except Exception:
        logger.exception("Conversation %s: writing its summary failed", conversation_id)

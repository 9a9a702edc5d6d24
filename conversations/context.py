"""What a reply is written from: the system message (the role's prompt, the user's
instructions and the conversation's note, and a summary of what no longer fits), then the
newest whole rounds that fit the model's context window, then the new message.

Used inside the one write transaction that starts a reply (conversations.sending): its
reads are few, and a conversation is read only as far back as its window reaches.
"""

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from conversations.errors import ChatError
from conversations.llm import ChatMessage
from conversations.models import Conversation, Message
from conversations.selectors import Context, context_messages, context_system
from conversations.token_count import message_tokens_estimate, text_tokens_estimate
from providers.selectors import ModelChoice

# In English whatever the conversation's language: it is for the model, like the prompts.
SUMMARY_HEADING = "A summary of the earlier part of this conversation (its messages are not repeated below):"


@dataclass(frozen=True)
class ReplyContext:
    system: ChatMessage
    history: list[Message]
    # What the request holds, as the reply records it (Message.sent, "What was sent").
    record: dict[str, Any]


def summary_block(summary: str) -> str:
    return f"{SUMMARY_HEADING}\n{summary}"


def reply_context(
    *, conversation: Conversation, user_message: Message, choice: ModelChoice, first: bool
) -> ReplyContext:
    """The system message and the earlier messages a reply to `user_message` is sent with.

    When earlier messages do not fit and the conversation has a summary of them, the
    summary goes in the system message and only the messages after what it covers are
    sent; `cut` then says whether some between the two were left out still (the summary
    is behind: conversations.summaries brings it up to date after the reply)."""
    window = choice.context_window or settings.OPENAI_CONTEXT_WINDOW
    system = context_system(conversation=conversation)
    # What is left of the window for earlier messages: less the reply's share, the system
    # message and the new message itself.
    budget = (
        window
        - settings.CHAT_REPLY_TOKENS
        - text_tokens_estimate(system.content)
        - message_tokens_estimate(user_message, images=choice.vision)
    )
    if budget < 0:
        # Nothing would be left for the reply: the provider would refuse it anyway.
        raise ChatError(
            _(
                "This message is too long for the model: with its instructions it is about "
                "%(tokens)s tokens, and %(window)s fit in its context window, %(reply)s of them kept "
                "for the reply. Shorten it, or pick a model with a larger window."
            )
            % {
                "tokens": window - settings.CHAT_REPLY_TOKENS - budget,
                "window": window,
                "reply": settings.CHAT_REPLY_TOKENS,
            },
            code="message_too_long",
        )
    before = user_message.pk
    # A first message has nothing before it but the system message: no query for it.
    context = (
        Context(messages=[], cut=False)
        if first
        else context_messages(
            conversation=conversation, budget=budget, before_id=before, images=choice.vision
        )
    )
    summarised = context.cut and settings.CHAT_SUMMARIES and conversation.summary_until is not None
    if summarised:
        note = summary_block(conversation.summary)
        system = ChatMessage(role="system", content=f"{system.content}\n\n{note}")
        context = context_messages(
            conversation=conversation,
            budget=budget - text_tokens_estimate(note),
            before_id=before,
            after_id=conversation.summary_until,
            images=choice.vision,
        )
    return ReplyContext(
        system=system,
        history=context.messages,
        record={
            "system": system.content,
            "messages": [*(m.pk for m in context.messages), user_message.pk],
            "images": choice.vision,
            # Earlier messages were left out (not summarised either): they did not fit.
            "cut": context.cut,
            "summary": conversation.summary if summarised else "",
            "window": window,
        },
    )

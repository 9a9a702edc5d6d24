"""How many tokens a message costs the model, before the provider says: a conservative
estimate (it would rather count too many than too few), since no tokenizer's data ships
with Chatsite's packages and each provider's tokenizer differs anyway.

Measured against OpenAI's o200k and cl100k tokenizers, English prose is 4-5 characters a
token, code 3-4, and Chinese 1-1.5 characters... so: a token for every 3 characters of
ASCII, 1.5 for every other character (CJK, accents, emoji), a few for each message's
framing, and a flat sum for each image (OpenAI bills a 512-pixel tile at 170 tokens; a
large image in high detail a few tiles). A reply whose provider reported its length is
counted by that instead.
"""

import math

from conversations.models import Message

MESSAGE_FRAMING = 4  # the role and separators around each message
IMAGE_TOKENS = 800
# The least a message can cost: its framing (an empty one: a failed reply, an image alone).
MESSAGE_TOKENS_MIN = MESSAGE_FRAMING


def text_tokens_estimate(text: str) -> int:
    ascii_chars = sum(1 for char in text if char < "\x80")
    return math.ceil(ascii_chars / 3 + (len(text) - ascii_chars) * 1.5)


def message_tokens_estimate(message: Message, *, images: bool = False) -> int:
    """What the message costs in a request: its text (or, for a reply, the tokens its
    provider reported), its framing, and its images when they are sent."""
    if message.author == Message.Author.ASSISTANT and message.completion_tokens and not message.reasoning:
        # Exact, unless the reply also thought (thinking is counted there, and not sent).
        text = message.completion_tokens
    else:
        text = text_tokens_estimate(message.content)
    pictures = len(message.image_list()) if images else 0
    return text + MESSAGE_FRAMING + pictures * IMAGE_TOKENS

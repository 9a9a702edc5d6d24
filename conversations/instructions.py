"""A user's custom instructions: what every new conversation should know about them and
how they want answers (ChatGPT's "custom instructions"); and a note for one conversation.

They are copied into a conversation when it starts, as its role's prompt is, so that a
change applies to new conversations and never rewrites what an earlier one was told.
The model gets them after the role's prompt, in the same system message.
"""

from django.utils.translation import gettext_lazy

from conversations.errors import ChatError
from conversations.models import INSTRUCTIONS_MAX_CHARS, UserInstructions
from conversations.owners import User, owner_id
from conversations.text import text_unstorable

# In English whatever the user's language: it is for the model, like the roles' prompts.
HEADING = "The user's custom instructions (follow them unless they conflict with the above):"
NOTE_HEADING = "The user's note for this conversation (follow it unless it conflicts with the above):"


def instructions_get(*, user_id: int) -> str:
    found = UserInstructions.objects.filter(user_id=user_id).values_list("text", flat=True).first()
    return found or ""


def instructions_set(*, user: User, text: object) -> str:
    """Saves the user's instructions (an empty text removes them); returns them as saved."""
    text = instructions_clean(text)
    UserInstructions.objects.update_or_create(user_id=owner_id(user), defaults={"text": text})
    return text


# What is refused, said of custom instructions or of a conversation's note.
_REFUSALS = {
    "instructions": (
        gettext_lazy("Custom instructions must be text."),
        gettext_lazy("Custom instructions can be at most %(count)s characters."),
        gettext_lazy("These instructions contain characters that cannot be saved."),
    ),
    "note": (
        gettext_lazy("A note must be text."),
        gettext_lazy("A note can be at most %(count)s characters."),
        gettext_lazy("This note contains characters that cannot be saved."),
    ),
}


def instructions_clean(text: object, *, kind: str = "instructions") -> str:
    """The text as it is saved (stripped), or ChatError saying why it cannot be."""
    not_text, too_long, unstorable = _REFUSALS[kind]
    if not isinstance(text, str):
        raise ChatError(str(not_text), code="invalid_instructions")
    text = text.strip()
    if len(text) > INSTRUCTIONS_MAX_CHARS:
        raise ChatError(str(too_long) % {"count": INSTRUCTIONS_MAX_CHARS}, code="instructions_too_long")
    if text_unstorable(text):
        raise ChatError(str(unstorable), code="invalid_instructions")
    return text


def system_text(*, role_prompt: str, instructions: str, note: str = "") -> str:
    """The system message: the role's prompt, then the user's instructions and the
    conversation's note, each under its heading, when there are any."""
    parts = [role_prompt] if role_prompt else []
    if instructions:
        parts.append(f"{HEADING}\n{instructions}")
    if note:
        parts.append(f"{NOTE_HEADING}\n{note}")
    return "\n\n".join(parts)

"""A user's custom instructions: what every new conversation should know about them and
how they want answers (ChatGPT's "custom instructions").

They are copied into a conversation when it starts, as its role's prompt is, so that a
change applies to new conversations and never rewrites what an earlier one was told.
The model gets them after the role's prompt, in the same system message.
"""

from django.utils.translation import gettext as _

from conversations.errors import ChatError
from conversations.models import INSTRUCTIONS_MAX_CHARS, UserInstructions
from conversations.owners import User, owner_id
from conversations.text import text_unstorable

# In English whatever the user's language: it is for the model, like the roles' prompts.
HEADING = "The user's custom instructions (follow them unless they conflict with the above):"


def instructions_get(*, user_id: int) -> str:
    found = UserInstructions.objects.filter(user_id=user_id).values_list("text", flat=True).first()
    return found or ""


def instructions_set(*, user: User, text: object) -> str:
    """Saves the user's instructions (an empty text removes them); returns them as saved."""
    if not isinstance(text, str):
        raise ChatError(_("Custom instructions must be text."), code="invalid_instructions")
    text = text.strip()
    if len(text) > INSTRUCTIONS_MAX_CHARS:
        raise ChatError(
            _("Custom instructions can be at most %(count)s characters.") % {"count": INSTRUCTIONS_MAX_CHARS},
            code="instructions_too_long",
        )
    if text_unstorable(text):
        raise ChatError(
            _("These instructions contain characters that cannot be saved."), code="invalid_instructions"
        )
    UserInstructions.objects.update_or_create(user_id=owner_id(user), defaults={"text": text})
    return text


def system_text(*, role_prompt: str, instructions: str) -> str:
    """The system message: the role's prompt, then the user's instructions if any."""
    if not instructions:
        return role_prompt
    return f"{role_prompt}\n\n{HEADING}\n{instructions}" if role_prompt else f"{HEADING}\n{instructions}"

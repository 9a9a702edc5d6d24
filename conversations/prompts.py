"""A user's prompt library: prompts kept to insert in the message box by typing / and
their title (the prompts of Open WebUI and LibreChat). Only their owner sees them."""

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from conversations.errors import ChatError
from conversations.models import PROMPT_TEXT_MAX_CHARS, PROMPT_TITLE_MAX_CHARS, PROMPTS_PER_USER, SavedPrompt
from conversations.owners import User, owner_id
from conversations.text import text_unstorable


def prompt_list(*, owner: User) -> QuerySet[SavedPrompt]:
    return SavedPrompt.objects.filter(owner_id=owner_id(owner)).only("id", "title", "text")


def prompt_create(*, owner: User, title: object, text: object) -> SavedPrompt:
    if not isinstance(title, str) or not isinstance(text, str):
        raise ChatError(_("A prompt's title and text must be text."), code="invalid_prompt")
    title, text = " ".join(title.split()), text.strip()
    if not title or not text:
        raise ChatError(_("A prompt needs a title and a text."), code="invalid_prompt")
    if len(title) > PROMPT_TITLE_MAX_CHARS or len(text) > PROMPT_TEXT_MAX_CHARS:
        raise ChatError(
            _("A prompt's title can be at most %(title)s characters, its text %(text)s.")
            % {"title": PROMPT_TITLE_MAX_CHARS, "text": PROMPT_TEXT_MAX_CHARS},
            code="prompt_too_long",
        )
    if text_unstorable(title) or text_unstorable(text):
        raise ChatError(_("This prompt contains characters that cannot be saved."), code="invalid_prompt")
    if prompt_list(owner=owner).count() >= PROMPTS_PER_USER:
        raise ChatError(
            _("You can keep at most %(count)s prompts. Delete one first.") % {"count": PROMPTS_PER_USER},
            code="too_many_prompts",
        )
    return SavedPrompt.objects.create(owner_id=owner_id(owner), title=title, text=text)


def prompt_delete(*, owner: User, prompt_id: int) -> None:
    """Deletes the owner's prompt; raises SavedPrompt.DoesNotExist for anyone else's."""
    deleted, _counts = SavedPrompt.objects.filter(owner_id=owner_id(owner), pk=prompt_id).delete()
    if not deleted:
        raise SavedPrompt.DoesNotExist

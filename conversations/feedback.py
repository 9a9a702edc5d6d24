"""Thumbs up or down, with an optional comment, on a user's own replies."""

from django.db import transaction
from django.utils.translation import gettext as _

from conversations.errors import ChatError
from conversations.models import Feedback, Message
from conversations.owners import User, owner_id
from conversations.text import text_unstorable

FEEDBACK_RATINGS = {"up": Feedback.Rating.UP, "down": Feedback.Rating.DOWN}
FEEDBACK_MAX_CHARS = 2000


@transaction.atomic
def reply_feedback_set(
    *, owner: User, reply_id: int, rating: object, comment: object = ""
) -> Feedback | None:
    """Rate one of the owner's finished replies "up" or "down" (with a comment), or take the
    rating back with "". Raises Message.DoesNotExist for anyone else's reply."""
    # The route's <int:> takes digits of any length; past a database integer no reply is.
    if not 0 < reply_id < 2**63:
        raise Message.DoesNotExist("Not a reply id.")
    reply = Message.objects.get(
        pk=reply_id, author=Message.Author.ASSISTANT, conversation__owner_id=owner_id(owner)
    )
    if rating == "":
        Feedback.objects.filter(reply=reply).delete()
        return None
    if rating not in FEEDBACK_RATINGS:
        raise ChatError(_("A rating is up or down."), code="invalid_rating")
    if reply.status == Message.Status.STREAMING:
        raise ChatError(_("Rate a reply once it is written."), code="reply_in_progress")
    if comment is None:
        comment = ""
    if not isinstance(comment, str) or text_unstorable(comment):
        raise ChatError(_("A comment must be text that can be saved."), code="invalid_comment")
    text = comment.strip()
    if len(text) > FEEDBACK_MAX_CHARS:
        raise ChatError(
            _("A comment can be at most %(count)s characters.") % {"count": FEEDBACK_MAX_CHARS},
            code="comment_too_long",
        )
    feedback, _created = Feedback.objects.update_or_create(
        reply=reply, defaults={"rating": FEEDBACK_RATINGS[str(rating)], "comment": text}
    )
    return feedback

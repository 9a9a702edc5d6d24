"""The one error a user is shown as is: raised by the services, answered by every caller."""

from django.conf import settings
from django.utils.translation import gettext as _


class ChatError(Exception):
    """A user mistake or a refused request; `message` is shown to the user as is."""

    def __init__(self, message: str, *, code: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after = retry_after  # seconds, for limits


def database_busy_message() -> str:
    """What a request or socket message that found the database locked or down is told
    (chatsite.database_unavailable, conversations.consumers)."""
    return _("Chatsite's database is busy. Try again in %(seconds)s s.") % {
        "seconds": settings.CHAT_RETRY_AFTER_SECONDS
    }

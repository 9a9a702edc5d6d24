"""The one error a user is shown as is: raised by the services, answered by every caller."""


class ChatError(Exception):
    """A user mistake or a refused request; `message` is shown to the user as is."""

    def __init__(self, message: str, *, code: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.retry_after = retry_after  # seconds, for limits

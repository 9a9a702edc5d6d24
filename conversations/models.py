import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    # PROTECT: a role with conversations is deactivated, not deleted, so history keeps its role.
    role = models.ForeignKey("roles.Role", on_delete=models.PROTECT, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    # The exact prompt the conversation started with: a later admin edit to the
    # role must not silently change what an old conversation was built on.
    system_prompt = models.TextField()
    model = models.CharField(max_length=200, blank=True)
    temperature = models.DecimalField(max_digits=3, decimal_places=2, default=Decimal("0.70"))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="conv_owner_updated")]

    def __str__(self) -> str:
        return self.title or str(self.id)


class Message(models.Model):
    class Author(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Status(models.TextChoices):
        COMPLETE = "complete", "Complete"
        STREAMING = "streaming", "Streaming"
        STOPPED = "stopped", "Stopped"
        ERROR = "error", "Error"
        INTERRUPTED = "interrupted", "Interrupted"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    author = models.CharField(max_length=10, choices=Author.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(blank=True, help_text="User-facing reason when status is error.")
    model = models.CharField(max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    # A turn is one user message and the reply to it (1, 2, 3...). Regenerating or editing
    # the last turn adds versions of it; the earlier ones are kept, superseded, so the
    # user can flip back. Superseded messages are neither shown nor sent upstream.
    turn = models.PositiveIntegerField(default=0)
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies"
    )
    superseded = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="msg_conv_created")]

    def __str__(self) -> str:
        return f"{self.author}: {self.content[:40]}"


class ApiToken(models.Model):
    """A bearer token for the JSON/SSE API. Only a hash is stored; the token is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for.")
    # The first characters of the token, kept in clear so a token can be recognised in lists.
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class UserLimit(models.Model):
    """One user's own limits; an empty field means the site's setting applies."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_limit")
    messages_per_minute = models.PositiveIntegerField(null=True, blank=True, help_text="0 = no limit.")
    concurrent_replies = models.PositiveIntegerField(null=True, blank=True, help_text="0 = no limit.")
    daily_tokens = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tokens a day (UTC), prompt and reply. 0 = no limit."
    )

    class Meta:
        verbose_name = "user limit"

    def __str__(self) -> str:
        return f"Limits of {self.user}"

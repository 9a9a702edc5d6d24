import uuid
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models
from django.utils.translation import gettext_lazy as _

FOLDER_NAME_MAX_CHARS = 100


class Folder(models.Model):
    """A user's named group of conversations: each conversation is in one folder or none."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="folders", verbose_name=_("owner")
    )
    name = models.CharField(_("name"), max_length=FOLDER_NAME_MAX_CHARS)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name", "pk"]
        verbose_name = _("folder")
        verbose_name_plural = _("folders")
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="folder_owner_name")]

    def __str__(self) -> str:
        return self.name


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="conversations",
        verbose_name=_("owner"),
    )
    # PROTECT: a role with conversations is deactivated, not deleted, so history keeps its role.
    role = models.ForeignKey(
        "roles.Role", on_delete=models.PROTECT, related_name="conversations", verbose_name=_("role")
    )
    title = models.CharField(_("title"), max_length=200, blank=True)
    # Chatsite made the title (the first words, then the model's): the model may write it
    # again. A title the user gave is never replaced.
    title_auto = models.BooleanField(_("title made by Chatsite"), default=False)
    # The exact prompt the conversation started with: a later admin edit to the
    # role must not silently change what an old conversation was built on.
    system_prompt = models.TextField(_("system prompt"))
    # The user's custom instructions as they were when the conversation started (as
    # ChatGPT does: a change applies to new conversations), sent after the role's prompt.
    custom_instructions = models.TextField(_("custom instructions"), blank=True, default="")
    # The user's note for this conversation alone (ChatGPT's project instructions), sent
    # after the role's prompt and the custom instructions; it can change at any time.
    system_note = models.TextField(_("note for this conversation"), blank=True, default="")
    # What the model wrote of the messages that no longer fit its context window, up to
    # and including message `summary_until`: sent in their place (conversations.summaries).
    summary = models.TextField(_("summary of earlier messages"), blank=True, default="")
    summary_until = models.BigIntegerField(_("summarised up to message"), null=True, blank=True)
    # Which model writes the next reply: the role's at first, then what the user picks.
    # An empty provider is the .env one (providers.models.DEFAULT_PROVIDER).
    provider = models.CharField(_("provider"), max_length=50, blank=True)
    model = models.CharField(_("model"), max_length=200, blank=True)
    temperature = models.DecimalField(
        _("temperature"), max_digits=3, decimal_places=2, default=Decimal("0.70")
    )
    # Set when the user pinned it (listed first, the latest pin on top) or archived it
    # (out of the list, still found by search); neither moves it in time.
    pinned_at = models.DateTimeField(_("pinned"), null=True, blank=True)
    archived_at = models.DateTimeField(_("archived"), null=True, blank=True)
    # Deleting a folder keeps its conversations unless the user says otherwise.
    folder = models.ForeignKey(
        Folder,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversations",
        verbose_name=_("folder"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    # Where an imported conversation came from ("chatgpt:<id>", "chatsite:<id>"): the same
    # file imported again adds it once. Empty for one written here.
    import_key = models.CharField(_("imported from"), max_length=120, blank=True, default="")

    class Meta:
        ordering = ["-updated_at"]
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        indexes = [models.Index(fields=["owner", "-updated_at"], name="conv_owner_updated")]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "import_key"],
                condition=~models.Q(import_key=""),
                name="conv_owner_import_key",
            )
        ]

    def __str__(self) -> str:
        return self.title or str(self.id)


class Message(models.Model):
    class Author(models.TextChoices):
        USER = "user", _("User")
        ASSISTANT = "assistant", _("Assistant")

    class Status(models.TextChoices):
        COMPLETE = "complete", _("Complete")
        STREAMING = "streaming", _("Streaming")
        STOPPED = "stopped", _("Stopped")
        ERROR = "error", _("Error")
        INTERRUPTED = "interrupted", _("Interrupted")

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", verbose_name=_("conversation")
    )
    author = models.CharField(_("author"), max_length=10, choices=Author.choices)
    content = models.TextField(_("content"), blank=True)
    # The model's "thinking" before its answer, when it shows it: kept and shown, never
    # sent back upstream.
    reasoning = models.TextField(_("reasoning"), blank=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(_("error"), blank=True, help_text=_("User-facing reason when status is error."))
    # The model that wrote this reply, and its provider's name.
    provider = models.CharField(_("provider"), max_length=50, blank=True)
    model = models.CharField(_("model"), max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(_("prompt tokens"), null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(_("completion tokens"), null=True, blank=True)
    # From the reply's start to the model's first text; empty when no text came.
    first_token_ms = models.PositiveIntegerField(_("time to first token (ms)"), null=True, blank=True)
    # From the reply's start to its answer's first text, when it reasoned first.
    reasoning_ms = models.PositiveIntegerField(_("thinking time (ms)"), null=True, blank=True)
    # A conversation is a tree: each message follows its parent (a reply its question, a
    # question the reply before it; the first question none). Regenerating a reply or
    # editing a question adds a sibling, a branch from that point; nothing is deleted. The
    # branch shown is one path from the first question down, and only it is sent upstream:
    # every message off it is superseded. A child is always written after its parent, so
    # the path read by id is the path in order.
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="children",
        verbose_name=_("follows"),
    )
    # A turn is one user message and the reply to it (1, 2, 3...), counted along its branch.
    turn = models.PositiveIntegerField(_("turn"), default=0)
    # On a reply, the question it answers (its parent too).
    reply_to = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="replies",
        verbose_name=_("reply to"),
    )
    superseded = models.BooleanField(_("superseded"), default=False)
    # When it was last set aside: going back to a version shows below it the branch that
    # was shown last, where the user left it.
    superseded_at = models.DateTimeField(_("set aside"), null=True, blank=True)
    # On a reply, what its request upstream held: {"system": the system message, "messages":
    # the ids of the messages after it, in order, "images": whether their images went too}.
    sent = models.JSONField(_("what was sent"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        indexes = [models.Index(fields=["conversation", "created_at"], name="msg_conv_created")]

    # Set by whoever already has them (conversations.sending), so image_list() need not ask.
    known_images: "list[Attachment] | None" = None
    # Set on an edited message as it is made: the version it replaces (services only).
    edited_from: "Message | None" = None

    def __str__(self) -> str:
        return f"{self.author}: {self.content[:40]}"

    def image_list(self) -> "list[Attachment]":
        """The images sent with this message (prefetch `attachments` when listing many)."""
        return self.known_images if self.known_images is not None else list(self.attachments.all())


class Feedback(models.Model):
    """A user's thumbs up or down on one reply, with an optional comment."""

    class Rating(models.IntegerChoices):
        UP = 1, _("Good")
        DOWN = -1, _("Bad")

    reply = models.OneToOneField(
        Message, on_delete=models.CASCADE, related_name="feedback", verbose_name=_("reply")
    )
    rating = models.SmallIntegerField(_("rating"), choices=Rating.choices)
    comment = models.TextField(_("comment"), blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        verbose_name = _("feedback")
        verbose_name_plural = _("feedback")

    def __str__(self) -> str:
        return f"{self.get_rating_display()}: {self.comment[:40]}"


class ApiToken(models.Model):
    """A bearer token for the JSON/SSE API. Only a hash is stored; the token is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens", verbose_name=_("user")
    )
    name = models.CharField(_("name"), max_length=100, blank=True, help_text=_("What the token is for."))
    # The first characters of the token, kept in clear so a token can be recognised in lists.
    prefix = models.CharField(_("prefix"), max_length=16, db_index=True)
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


INSTRUCTIONS_MAX_CHARS = 1500  # as ChatGPT's custom instructions


class UserInstructions(models.Model):
    """What a user wants every new conversation to know about them and their answers."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="chat_instructions",
        verbose_name=_("user"),
    )
    text = models.TextField(_("custom instructions"), blank=True, max_length=INSTRUCTIONS_MAX_CHARS)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("custom instructions")
        verbose_name_plural = _("custom instructions")

    def __str__(self) -> str:
        return str(self.user)


PROMPT_TITLE_MAX_CHARS = 80
PROMPT_TEXT_MAX_CHARS = 4000
PROMPTS_PER_USER = 100


class SavedPrompt(models.Model):
    """A prompt the user keeps, to insert by typing / and its title in the message box."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="saved_prompts",
        verbose_name=_("owner"),
    )
    title = models.CharField(_("title"), max_length=PROMPT_TITLE_MAX_CHARS)
    text = models.TextField(_("text"), max_length=PROMPT_TEXT_MAX_CHARS)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("saved prompt")
        verbose_name_plural = _("saved prompts")
        ordering = ["title", "id"]

    def __str__(self) -> str:
        return self.title


class UserLimit(models.Model):
    """One user's own limits; an empty field means the site's setting applies."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_limit", verbose_name=_("user")
    )
    messages_per_minute = models.PositiveIntegerField(
        _("messages per minute"), null=True, blank=True, help_text=_("0 = no limit.")
    )
    concurrent_replies = models.PositiveIntegerField(
        _("concurrent replies"), null=True, blank=True, help_text=_("0 = no limit.")
    )
    daily_tokens = models.PositiveIntegerField(
        _("daily tokens"),
        null=True,
        blank=True,
        help_text=_("Tokens a day (UTC), prompt and reply. 0 = no limit."),
    )

    class Meta:
        verbose_name = _("user limit")
        verbose_name_plural = _("user limits")

    def __str__(self) -> str:
        return f"Limits of {self.user}"


def _attachment_path(attachment: "Attachment", filename: str) -> str:
    # A random name: nothing of the user's file name, and nothing to guess.
    extension = filename.rsplit(".", 1)[-1].lower()
    return f"attachments/{attachment.owner_id}/{uuid.uuid4().hex}.{extension}"


class Attachment(models.Model):
    """An image a user attached to a message (re-encoded: conversations.images)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="attachments",
        verbose_name=_("owner"),
    )
    # Empty from the upload until the message it goes with is sent.
    message = models.ForeignKey(
        Message,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="attachments",
        verbose_name=_("message"),
    )
    file = models.FileField(_("file"), upload_to=_attachment_path)
    content_type = models.CharField(_("content type"), max_length=50)
    width = models.PositiveIntegerField(_("width"))
    height = models.PositiveIntegerField(_("height"))
    size = models.PositiveIntegerField(_("size (bytes)"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("attachment")
        verbose_name_plural = _("attachments")

    def __str__(self) -> str:
        return f"{self.content_type} {self.width}×{self.height}"


class UserUsage(User):
    """Each user's replies and tokens, for staff: the admin's Usage list and its CSV
    (figures from conversations.usage). No table: a view of the users."""

    class Meta:
        proxy = True
        verbose_name = _("usage")
        verbose_name_plural = _("usage")

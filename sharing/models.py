from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from conversations.models import Conversation


class SharedLink(models.Model):
    """A read-only copy of a conversation as it was when its owner shared it, at an
    unguessable URL anyone with the link can open. One per conversation: sharing again
    updates the copy and keeps the URL; deleting the link (or the conversation) ends it."""

    conversation = models.OneToOneField(
        Conversation, on_delete=models.CASCADE, related_name="shared_link", verbose_name=_("conversation")
    )
    # secrets.token_urlsafe(24): 192 random bits, the whole of what the URL proves.
    token = models.CharField(_("token"), max_length=64, unique=True)
    title = models.CharField(_("title"), max_length=200, blank=True)
    role_slug = models.SlugField(_("role"), max_length=50, blank=True)
    # [{"author": "user" | "assistant", "content": ..., "status": ..., "images": n}, ...]
    messages = models.JSONField(_("messages"), default=list)
    # Shown on the page only when the owner chose to be named.
    author_name = models.CharField(_("author name"), max_length=150, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"))

    class Meta:
        verbose_name = _("shared link")
        verbose_name_plural = _("shared links")
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("sharing:view", args=[self.token])

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import translation
from django.utils.translation import gettext_lazy as _


def language_suffix(language: str | None) -> str:
    """The field suffix of a supported language other than the default ("zh_hans"), or ""."""
    code = (language or settings.LANGUAGE_CODE).lower()
    if code.startswith("zh"):  # zh, zh-hans, zh-cn: the one Chinese the site speaks
        code = "zh-hans"
    if code == settings.LANGUAGE_CODE or code not in dict(settings.LANGUAGES):
        return ""
    return code.replace("-", "_")


class Role(models.Model):
    """An AI persona: a system prompt users pick per conversation.

    The system prompt is staff-only: users see the name and description, in their page's
    language when the role has them in it (`name_zh_hans`, ...), else in the default one.
    """

    slug = models.SlugField(
        _("slug"),
        unique=True,
        max_length=50,
        help_text=_("Stable key used by API clients, e.g. role=teacher."),
    )
    name = models.CharField(_("name"), max_length=100, help_text=_("In English, the default language."))
    name_zh_hans = models.CharField(
        _("name (Chinese)"), max_length=100, blank=True, help_text=_("Empty: the English name is shown.")
    )
    description = models.CharField(
        _("description"),
        max_length=300,
        blank=True,
        help_text=_("One line shown to users in the role picker."),
    )
    description_zh_hans = models.CharField(
        _("description (Chinese)"),
        max_length=300,
        blank=True,
        help_text=_("Empty: the English description is shown."),
    )
    system_prompt = models.TextField(
        _("system prompt"), help_text=_("Sent to the model; never shown to users.")
    )
    provider = models.CharField(
        _("provider"),
        max_length=50,
        blank=True,
        help_text=_("Name of the provider of this role's model; empty is the one in .env."),
    )
    model = models.CharField(
        _("model"),
        max_length=200,
        blank=True,
        help_text=_("Optional model name for this role; empty uses the provider's first (OPENAI_MODEL)."),
    )
    model_pinned = models.BooleanField(
        _("model pinned"),
        default=False,
        help_text=_("Users cannot pick another model for this role's conversations."),
    )
    temperature = models.DecimalField(
        _("temperature"), max_digits=3, decimal_places=2, default=Decimal("0.70")
    )
    is_active = models.BooleanField(_("active"), default=True)
    sort_order = models.PositiveIntegerField(_("sort order"), default=100)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["sort_order", "name"]
        verbose_name = _("AI role")
        verbose_name_plural = _("AI roles")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(temperature__gte=0) & models.Q(temperature__lte=2),
                name="role_temperature_range",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    def name_in(self, language: str | None) -> str:
        suffix = language_suffix(language)
        return (getattr(self, f"name_{suffix}", "") if suffix else "") or self.name

    def description_in(self, language: str | None) -> str:
        suffix = language_suffix(language)
        return (getattr(self, f"description_{suffix}", "") if suffix else "") or self.description

    @property
    def display_name(self) -> str:
        """The name in the active language (the page's), else the default one."""
        return self.name_in(translation.get_language())

    @property
    def display_description(self) -> str:
        return self.description_in(translation.get_language())

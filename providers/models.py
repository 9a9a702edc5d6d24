from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from providers.secrets import secret_decrypt, secret_encrypt

# The provider configured by OPENAI_* in .env (or the built-in local model): not a row.
DEFAULT_PROVIDER = "default"


def _not_reserved(value: str) -> None:
    if value == DEFAULT_PROVIDER:
        raise ValidationError(_("“default” is the provider configured in .env; choose another name."))


class Provider(models.Model):
    """An OpenAI-compatible API the site can use besides the one in .env.

    Its API key is write-only: typed in the admin, stored encrypted, never shown again.
    """

    name = models.SlugField(
        _("name"),
        max_length=50,
        unique=True,
        validators=[_not_reserved],
        help_text=_("Stable key used by API clients, e.g. provider=deepseek."),
    )
    label = models.CharField(_("label"), max_length=100, help_text=_("Shown to users, e.g. DeepSeek."))
    base_url = models.URLField(_("base URL"), max_length=500, help_text=_("e.g. https://api.deepseek.com/v1"))
    api_key_encrypted = models.TextField(_("API key (encrypted)"), blank=True, editable=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    read_timeout = models.FloatField(
        _("read timeout (s)"),
        null=True,
        blank=True,
        help_text=_("Longest gap allowed between tokens; empty uses OPENAI_READ_TIMEOUT."),
    )
    sort_order = models.PositiveIntegerField(_("sort order"), default=100)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["sort_order", "label"]
        verbose_name = _("provider")
        verbose_name_plural = _("providers")

    def __str__(self) -> str:
        return f"{self.label} ({self.name})"

    @property
    def api_key(self) -> str:
        return secret_decrypt(self.api_key_encrypted)

    @api_key.setter
    def api_key(self, plain: str) -> None:
        self.api_key_encrypted = secret_encrypt(plain)

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key_encrypted)


class ProviderModel(models.Model):
    """One model of a provider that users may pick."""

    provider = models.ForeignKey(
        Provider, on_delete=models.CASCADE, related_name="models", verbose_name=_("provider")
    )
    name = models.CharField(_("model"), max_length=200, help_text=_("The provider's model id."))
    label = models.CharField(_("display name"), max_length=200, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    context_window = models.PositiveIntegerField(_("context window (tokens)"), null=True, blank=True)
    vision = models.BooleanField(_("reads images"), default=False)
    reasoning = models.BooleanField(_("shows its thinking"), default=False)
    temperature = models.DecimalField(
        _("temperature"),
        max_digits=3,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("Empty: the role's temperature."),
    )
    sort_order = models.PositiveIntegerField(_("sort order"), default=100)

    class Meta:
        ordering = ["sort_order", "name"]
        verbose_name = _("model")
        verbose_name_plural = _("models")
        constraints = [models.UniqueConstraint(fields=["provider", "name"], name="provider_model_unique")]

    def __str__(self) -> str:
        return self.label or self.name

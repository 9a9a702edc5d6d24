"""Which models users may pick, and how to reach the provider of each.

The provider from .env (OPENAI_*, or the built-in local model that `./run` starts when
none is set) is the default one, named "default"; the admin adds others. Nothing here
talks to a provider: see providers.clients.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.utils.translation import gettext as _

from providers.models import DEFAULT_PROVIDER, Provider, ProviderModel
from providers.secrets import KeyUnreadable


class HasModel(Protocol):
    provider: str
    model: str


OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class Endpoint:
    """How to reach one provider. Holds its key: never render or log it."""

    name: str
    base_url: str
    api_key: str
    read_timeout: float
    connect_timeout: float

    def __repr__(self) -> str:  # a traceback or a log line must never carry the key
        return f"Endpoint(name={self.name!r}, base_url={self.base_url!r})"


@dataclass(frozen=True)
class ModelChoice:
    provider: str
    provider_label: str
    model: str
    label: str
    vision: bool = False
    reasoning: bool = False
    context_window: int | None = None
    temperature: Decimal | None = None

    @property
    def value(self) -> str:
        """The picker's value: provider names have no "/", model ids may."""
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True)
class ModelPick:
    """A model a user asked for: the picker's "provider/model", or the API's two fields."""

    provider: str
    model: str

    @classmethod
    def parse(cls, value: object) -> "ModelPick | None":
        if not isinstance(value, str) or not value.strip():
            return None
        provider, _slash, model = value.strip().partition("/")
        return cls(provider=provider, model=model)


class ModelUnavailable(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def default_endpoint() -> Endpoint | None:
    """The .env provider, or None when neither a key nor a base URL is set."""
    base_url = settings.OPENAI_BASE_URL
    api_key = settings.OPENAI_API_KEY
    if not base_url and not api_key:
        return None
    return Endpoint(
        name=DEFAULT_PROVIDER,
        base_url=base_url or OPENAI_DEFAULT_BASE_URL,
        # Local servers (Ollama, vLLM, llama.cpp) need no key, but the SDK insists on one.
        api_key=api_key or "not-needed",
        read_timeout=settings.OPENAI_READ_TIMEOUT,
        connect_timeout=settings.OPENAI_CONNECT_TIMEOUT,
    )


def endpoint_of(provider: Provider) -> Endpoint:
    return Endpoint(
        name=provider.name,
        base_url=provider.base_url,
        api_key=provider.api_key or "not-needed",
        read_timeout=provider.read_timeout or settings.OPENAI_READ_TIMEOUT,
        connect_timeout=settings.OPENAI_CONNECT_TIMEOUT,
    )


def endpoint_get(name: str) -> Endpoint | None:
    """The provider of that name, if it is configured and enabled."""
    if not name or name == DEFAULT_PROVIDER:
        return default_endpoint()
    provider = Provider.objects.filter(name=name, enabled=True).first()
    if provider is None:
        return None
    try:
        return endpoint_of(provider)
    except KeyUnreadable:
        return None


def default_label() -> str:
    if settings.CHATSITE_LOCAL_MODEL_IN_USE:
        return _("Built-in local model")
    return str(settings.OPENAI_PROVIDER_LABEL)


def _default_choices() -> list[ModelChoice]:
    """The .env provider's model (settings only: no database)."""
    if default_endpoint() is None:
        return []
    model = settings.OPENAI_MODEL
    return [ModelChoice(DEFAULT_PROVIDER, default_label(), model, model, vision=settings.OPENAI_MODEL_VISION)]


def model_choices() -> list[ModelChoice]:
    """Every model users may pick, the default provider's first, each provider's in order."""
    choices = _default_choices()
    rows = ProviderModel.objects.filter(enabled=True, provider__enabled=True).select_related("provider")
    for row in rows.order_by("provider__sort_order", "provider__label", "sort_order", "name"):
        choices.append(
            ModelChoice(
                provider=row.provider.name,
                provider_label=row.provider.label,
                model=row.name,
                label=row.label or row.name,
                vision=row.vision,
                reasoning=row.reasoning,
                context_window=row.context_window,
                temperature=row.temperature,
            )
        )
    return choices


def model_choice_get(*, provider: str, model: str, any_default_model: bool = False) -> ModelChoice:
    """The choice named. Raises ModelUnavailable for an unknown or disabled one.

    An empty provider is the default one; an empty model is the provider's first. With
    `any_default_model`, any model of the default provider is taken: a role may name
    one the picker does not offer (OPENAI_MODEL is only its default).
    """
    provider = provider or DEFAULT_PROVIDER
    # The default provider's models come from the settings: most messages need no query.
    offered = _default_choices() if provider == DEFAULT_PROVIDER else model_choices()
    choices = [c for c in offered if c.provider == provider]
    if (
        not choices
        and provider == DEFAULT_PROVIDER
        and (any_default_model or model in ("", settings.OPENAI_MODEL))
    ):
        # None configured: the reply says so (conversations.llm), the message is kept.
        return ModelChoice(DEFAULT_PROVIDER, default_label(), model or settings.OPENAI_MODEL, model)
    default_vision = settings.OPENAI_MODEL_VISION
    if not choices:
        raise ModelUnavailable(_("Unknown or disabled provider: %(name)s.") % {"name": provider})
    if not model:
        return choices[0]
    for choice in choices:
        if choice.model == model:
            return choice
    if provider == DEFAULT_PROVIDER and any_default_model:
        return ModelChoice(DEFAULT_PROVIDER, choices[0].provider_label, model, model, vision=default_vision)
    raise ModelUnavailable(
        _("Unknown or disabled model %(model)s for provider %(name)s.") % {"model": model, "name": provider}
    )


def model_groups() -> list[tuple[str, list[ModelChoice]]]:
    """The choices by provider, in order: the picker's option groups."""
    groups: dict[str, tuple[str, list[ModelChoice]]] = {}
    for choice in model_choices():
        groups.setdefault(choice.provider, (choice.provider_label, []))[1].append(choice)
    return list(groups.values())


def conversation_model_value(conversation: "HasModel") -> str:
    """The picker's value for the model a conversation uses now ("" when it is unavailable)."""
    try:
        return model_choice_get(
            provider=conversation.provider, model=conversation.model, any_default_model=True
        ).value
    except ModelUnavailable:
        return ""

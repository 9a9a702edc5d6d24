"""Writes to providers: their models, discovered from the provider itself, and their keys."""

import logging
from dataclasses import dataclass

import openai
from asgiref.sync import async_to_sync

from providers.clients import models_list
from providers.models import Provider, ProviderModel
from providers.secrets import secret_rotate
from providers.selectors import endpoint_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refreshed:
    added: list[str]
    listed: int


class RefreshFailed(Exception):
    pass


def provider_models_refresh(*, provider: Provider) -> Refreshed:
    """Ask the provider which models it has (GET /v1/models) and add the ones not known
    yet, enabled. Models already known keep the admin's settings; none are removed (a
    provider may list a model only sometimes)."""
    try:
        listed = async_to_sync(models_list)(endpoint_of(provider))
    except openai.OpenAIError as exc:
        # Not the exception itself: a provider's error body can echo the API key.
        status = getattr(exc, "status_code", None)
        logger.warning(
            "Listing the models of %s failed: %s (HTTP %s)", provider.name, type(exc).__name__, status
        )
        raise RefreshFailed(f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")) from None
    known = set(provider.models.values_list("name", flat=True))
    added = sorted(name for name in set(listed) - known if name)
    ProviderModel.objects.bulk_create([ProviderModel(provider=provider, name=name) for name in added])
    return Refreshed(added=added, listed=len(listed))


def provider_keys_rotate() -> int:
    """Encrypt every stored key again under the current secret (after SECRET_KEY rotated)."""
    rotated = 0
    for provider in Provider.objects.exclude(api_key_encrypted=""):
        provider.api_key_encrypted = secret_rotate(provider.api_key_encrypted)
        provider.save(update_fields=["api_key_encrypted", "updated_at"])
        rotated += 1
    return rotated

"""Which model writes a conversation's next reply, and how to reach its provider.

A conversation starts with its role's model; the user may pick another at any
message (it applies from that reply on), unless the role pins its model.
"""

from django.utils.translation import gettext as _

from conversations.errors import ChatError
from conversations.models import Conversation
from providers.local_model_state import local_model_state, local_model_state_refusal
from providers.models import DEFAULT_PROVIDER
from providers.selectors import (
    Endpoint,
    ModelChoice,
    ModelPick,
    ModelUnavailable,
    endpoint_get,
    model_choice_get,
)

# A first build takes minutes: a client polling every few seconds would only add load.
LOCAL_MODEL_RETRY_SECONDS = 30


def conversation_model_resolve(
    *, conversation: Conversation, pick: ModelPick | None
) -> tuple[ModelChoice, Endpoint | None]:
    """The conversation's model after the user's pick (saved on it), and its provider.

    Raises ChatError (code "invalid_model") for a model that is unknown, disabled, or
    whose provider is not configured: before anything is saved or sent. With no provider
    configured at all, the endpoint is None: the reply then says so.
    """
    picked = pick is not None and not conversation.role.model_pinned
    if pick is not None and picked:
        provider, model = pick.provider, pick.model
    else:  # a pinned role's conversations keep its model, whatever an old client sends
        provider, model = conversation.provider, conversation.model
    try:
        # A user picks among the models offered; a role may name any of the default provider's.
        choice = model_choice_get(provider=provider, model=model, any_default_model=not picked)
    except ModelUnavailable as exc:
        raise ChatError(exc.message, code="invalid_model") from None
    endpoint = endpoint_get(choice.provider)
    if endpoint is None and choice.provider != DEFAULT_PROVIDER:
        raise ChatError(
            _("The provider of this model is not available. Pick another model."), code="invalid_model"
        )
    local_model = local_model_state() if choice.provider == DEFAULT_PROVIDER else None
    if local_model is not None:
        # ./run serves while it prepares the built-in model: say so, not "unreachable".
        raise ChatError(
            local_model_state_refusal(local_model),
            code="unavailable",
            retry_after=None if local_model.failed else LOCAL_MODEL_RETRY_SECONDS,
        )
    if (conversation.provider, conversation.model) != (provider, model):
        conversation.provider, conversation.model = provider, model
        conversation.save(update_fields=["provider", "model", "updated_at"])
    return choice, endpoint

import pytest

from providers.models import Provider, ProviderModel
from providers.selectors import (
    ModelPick,
    ModelUnavailable,
    endpoint_get,
    model_choice_get,
    model_choices,
    model_groups,
)
from tests.conftest import second_provider_add

pytestmark = pytest.mark.django_db


def test_the_env_provider_comes_first_then_the_admins_in_their_order(fake_openai, second_fake):
    second_provider_add(second_fake)

    choices = [(c.provider, c.model) for c in model_choices()]

    assert choices == [("default", "fake-model"), ("second", "second-large"), ("second", "second-vision")]


def test_disabled_models_and_providers_are_not_offered(fake_openai, second_fake):
    provider = second_provider_add(second_fake)
    ProviderModel.objects.filter(name="second-vision").update(enabled=False)
    assert [c.model for c in model_choices() if c.provider == "second"] == ["second-large"]

    Provider.objects.filter(pk=provider.pk).update(enabled=False)

    assert [c.provider for c in model_choices()] == ["default"]
    assert endpoint_get("second") is None


def test_the_picker_groups_models_by_provider(fake_openai, second_fake):
    second_provider_add(second_fake)

    groups = [(label, [c.model for c in choices]) for label, choices in model_groups()]

    assert groups == [
        ("OpenAI-compatible", ["fake-model"]),
        ("Second Cloud", ["second-large", "second-vision"]),
    ]


def test_an_unknown_model_of_an_added_provider_is_unavailable(fake_openai, second_fake):
    second_provider_add(second_fake)

    with pytest.raises(ModelUnavailable, match="no-such-model"):
        model_choice_get(provider="second", model="no-such-model")
    with pytest.raises(ModelUnavailable, match="nowhere"):
        model_choice_get(provider="nowhere", model="")


def test_an_empty_model_is_the_providers_first(fake_openai, second_fake):
    second_provider_add(second_fake)

    assert model_choice_get(provider="second", model="").model == "second-large"


def test_the_default_provider_takes_any_model_a_role_names(fake_openai):
    choice = model_choice_get(provider="", model="role-own-model", any_default_model=True)

    assert choice.model == "role-own-model"


def test_a_user_picks_only_among_the_default_providers_offered_models(fake_openai):
    with pytest.raises(ModelUnavailable):
        model_choice_get(provider="default", model="role-own-model")


def test_an_endpoint_holds_the_key_but_never_shows_it(fake_openai, second_fake):
    second_provider_add(second_fake)

    endpoint = endpoint_get("second")

    assert endpoint is not None and endpoint.api_key == "second-secret-key"
    assert "second-secret-key" not in repr(endpoint)


@pytest.mark.parametrize(
    ("value", "pick"),
    [
        ("second/second-large", ModelPick("second", "second-large")),
        ("default/org/model:8b", ModelPick("default", "org/model:8b")),  # model ids may hold / and :
        ("", None),
        (None, None),
    ],
)
def test_the_pickers_value_names_a_provider_and_a_model(value, pick):
    assert ModelPick.parse(value) == pick

"""Providers in the admin: the key is write-only, and the models come from the provider."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from providers.models import Provider, ProviderModel
from tests.conftest import second_provider_add

pytestmark = pytest.mark.django_db

KEY = "sk-typed-in-the-admin-0123456789"


@pytest.fixture
def admin_client(client):
    admin = get_user_model().objects.create_superuser(username="root", password="x-admin-password-1")
    client.force_login(admin)
    return client


def add_form(**overrides):
    form = {
        "label": "DeepSeek",
        "name": "deepseek",
        "base_url": "https://api.deepseek.com/v1",
        "enabled": "on",
        "sort_order": "100",
        "api_key": KEY,
        "models-TOTAL_FORMS": "0",
        "models-INITIAL_FORMS": "0",
    }
    form.update(overrides)
    return form


def test_an_admin_adds_a_provider_and_its_key_is_stored_encrypted(admin_client):
    response = admin_client.post(reverse("admin:providers_provider_add"), add_form())

    assert response.status_code == 302
    provider = Provider.objects.get(name="deepseek")
    assert provider.api_key == KEY
    assert KEY not in provider.api_key_encrypted


def test_the_key_is_never_shown_again(admin_client):
    admin_client.post(reverse("admin:providers_provider_add"), add_form())
    provider = Provider.objects.get(name="deepseek")

    pages = [
        admin_client.get(reverse("admin:providers_provider_change", args=[provider.pk])),
        admin_client.get(reverse("admin:providers_provider_changelist")),
    ]

    for page in pages:
        assert page.status_code == 200
        assert KEY not in page.content.decode()
        assert provider.api_key_encrypted not in page.content.decode()


def test_saving_with_the_key_field_empty_keeps_the_key(admin_client):
    admin_client.post(reverse("admin:providers_provider_add"), add_form())
    provider = Provider.objects.get(name="deepseek")

    admin_client.post(
        reverse("admin:providers_provider_change", args=[provider.pk]),
        add_form(api_key="", label="DeepSeek 2"),
    )

    provider.refresh_from_db()
    assert (provider.label, provider.api_key) == ("DeepSeek 2", KEY)


def test_the_key_can_be_removed(admin_client):
    admin_client.post(reverse("admin:providers_provider_add"), add_form())
    provider = Provider.objects.get(name="deepseek")

    admin_client.post(
        reverse("admin:providers_provider_change", args=[provider.pk]),
        add_form(api_key="", clear_api_key="on"),
    )

    provider.refresh_from_db()
    assert (provider.api_key_encrypted, provider.api_key) == ("", "")


def test_default_is_reserved_for_the_env_provider(admin_client):
    response = admin_client.post(reverse("admin:providers_provider_add"), add_form(name="default"))

    assert response.status_code == 200
    assert not Provider.objects.exists()


def test_refresh_models_adds_what_the_provider_lists_and_keeps_the_admins_settings(admin_client, second_fake):
    provider = second_provider_add(second_fake)
    ProviderModel.objects.filter(name="second-vision").update(enabled=False)
    second_fake.listed = ["second-large", "second-vision", "second-new"]

    response = admin_client.post(
        reverse("admin:providers_provider_changelist"),
        {"action": "refresh_models", "_selected_action": [provider.pk]},
        follow=True,
    )

    assert "3 models; 1 new ones were added: second-new" in response.content.decode()
    models = dict(provider.models.values_list("name", "enabled"))
    assert models == {"second-large": True, "second-vision": False, "second-new": True}
    assert second_fake.requests == []  # listing spends no tokens


def test_refresh_models_of_an_unreachable_provider_says_so(admin_client):
    from chatsite.embedded_redis import free_port

    provider = Provider.objects.create(
        name="gone", label="Gone", base_url=f"http://127.0.0.1:{free_port()}/v1"
    )

    response = admin_client.post(
        reverse("admin:providers_provider_changelist"),
        {"action": "refresh_models", "_selected_action": [provider.pk]},
        follow=True,
    )

    assert "could not list its models (APIConnectionError)" in response.content.decode()
    assert not provider.models.exists()

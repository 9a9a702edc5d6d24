"""The prompt library: kept on the settings page, each user's own."""

import pytest

from conversations.models import PROMPTS_PER_USER, SavedPrompt
from conversations.prompts import prompt_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client(client, alice, builtin_roles):
    client.force_login(alice)
    return client


def test_a_prompt_is_saved_listed_in_settings_and_given_to_the_chat_page(alice_client, alice):
    saved = alice_client.post(
        "/accounts/settings/prompts/", {"title": "  Summarise ", "text": "Summarise this:\n"}
    )

    settings_page = alice_client.get("/accounts/settings/").content.decode()
    chat_page = alice_client.get("/").content.decode()

    assert saved.status_code == 302
    assert list(SavedPrompt.objects.filter(owner=alice).values_list("title", "text")) == [
        ("Summarise", "Summarise this:")
    ]
    assert '<span class="prompt-title">Summarise</span>' in settings_page
    assert '<li data-title="Summarise" data-text="Summarise this:"></li>' in chat_page


def test_a_prompt_without_a_title_is_refused(alice_client, alice):
    refused = alice_client.post("/accounts/settings/prompts/", {"title": " ", "text": "Something"})

    assert refused.status_code == 400
    assert not SavedPrompt.objects.exists()


def test_a_prompts_text_is_escaped_in_the_page(alice_client, alice):
    prompt_create(owner=alice, title='"><script>alert(1)</script>', text="<img src=x onerror=alert(1)>")

    chat_page = alice_client.get("/").content.decode()

    assert "<script>alert(1)</script>" not in chat_page and "<img src=x" not in chat_page
    assert 'data-text="&lt;img src=x onerror=alert(1)&gt;"' in chat_page


def test_a_user_keeps_a_limited_number_of_prompts(alice_client, alice):
    SavedPrompt.objects.bulk_create(
        SavedPrompt(owner=alice, title=f"Prompt {n}", text="text") for n in range(PROMPTS_PER_USER)
    )

    refused = alice_client.post("/accounts/settings/prompts/", {"title": "One more", "text": "text"})

    assert refused.status_code == 400
    assert "at most 100 prompts" in refused.content.decode()
    assert SavedPrompt.objects.filter(owner=alice).count() == PROMPTS_PER_USER


def test_deleting_a_prompt_deletes_only_that_one(alice_client, alice):
    kept = prompt_create(owner=alice, title="Keep", text="kept")
    gone = prompt_create(owner=alice, title="Drop", text="dropped")

    response = alice_client.post(f"/accounts/settings/prompts/{gone.pk}/delete/")

    assert response.status_code == 302
    assert list(SavedPrompt.objects.values_list("pk", flat=True)) == [kept.pk]


def test_another_users_prompt_is_not_found_and_stays(alice_client, bob):
    bobs = prompt_create(owner=bob, title="Bob's", text="mine")

    response = alice_client.post(f"/accounts/settings/prompts/{bobs.pk}/delete/")
    page = alice_client.get("/").content.decode()

    assert response.status_code == 404
    assert SavedPrompt.objects.filter(pk=bobs.pk).exists()
    assert "Bob&#39;s" not in page and "Bob's" not in page

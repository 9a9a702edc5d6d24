"""Importing from the settings page: the upload, what it says, and its limits."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conversations.models import Conversation
from tests.conversations.imports_samples import chatgpt_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client(client, alice, builtin_roles):
    client.force_login(alice)
    return client


def upload(data: bytes, name: str = "conversations.json") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/json")


def test_an_uploaded_export_is_imported_and_the_page_says_how_many(alice_client, alice):
    imported = alice_client.post("/accounts/settings/import/", {"file": upload(chatgpt_file())}, follow=True)

    again = alice_client.post("/accounts/settings/import/", {"file": upload(chatgpt_file())}, follow=True)

    assert "1 conversation was imported." in imported.content.decode()
    assert "0 conversations were imported. 1 was there already." in again.content.decode()
    assert Conversation.objects.filter(owner=alice, title="Tides").count() == 1


def test_a_file_that_cannot_be_read_is_refused_on_the_page(alice_client, alice):
    refused = alice_client.post("/accounts/settings/import/", {"file": upload(b"{broken")})

    assert refused.status_code == 400
    assert '<p class="form-error" role="alert" id="import-error">The file is not valid JSON.</p>' in (
        refused.content.decode()
    )
    assert not Conversation.objects.exists()


def test_an_upload_without_a_file_imports_nothing(alice_client):
    refused = alice_client.post("/accounts/settings/import/", {})

    assert refused.status_code == 400
    assert "Choose a file to import." in refused.content.decode()


def test_a_file_over_the_limit_is_refused_before_it_is_read(alice_client, settings):
    settings.CHAT_IMPORT_MAX_BYTES = 10

    refused = alice_client.post("/accounts/settings/import/", {"file": upload(chatgpt_file())})

    assert refused.status_code == 400
    assert "can be at most 10\xa0bytes." in refused.content.decode()
    assert not Conversation.objects.exists()

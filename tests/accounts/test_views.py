"""The account pages: sign-up, settings, password change and reset, sign out everywhere, delete."""

import re

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.urls import reverse

from conversations.models import ApiToken, Conversation, UserLimit
from conversations.services import conversation_create
from conversations.tokens import api_token_create
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "another-long-password-2"


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_signup_creates_an_account_and_signs_in(client, builtin_roles):
    response = client.post(
        reverse("signup"),
        {"username": "carol", "password1": "a-long-test-password-1", "password2": "a-long-test-password-1"},
    )

    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_signup_can_be_turned_off(client, settings):
    settings.CHATSITE_SIGNUP_ENABLED = False

    assert client.get(reverse("signup")).status_code == 404
    assert "Create an account" not in client.get(reverse("login")).content.decode()


def test_signup_keeps_an_optional_email_for_password_resets(client):
    client.post(
        reverse("signup"),
        {"username": "dora", "email": "dora@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )

    assert User.objects.get(username="dora").email == "dora@example.com"


# --- Settings ----------------------------------------------------------------------


def test_the_settings_page_offers_every_account_action(alice):
    page = signed_in(alice).get("/accounts/settings/").content.decode()

    for action in ["password_change/", "settings/sessions/", "settings/delete/"]:
        assert f'"/accounts/{action}"' in page
    assert 'name="language"' in page and 'name="email"' in page


def test_the_settings_page_needs_a_signed_in_user(client):
    response = client.get("/accounts/settings/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_settings_page_speaks_chinese(alice):
    page = signed_in(alice).get("/accounts/settings/", headers={"Accept-Language": "zh-CN"}).content.decode()

    assert "设置" in page and "删除我的账户和数据" in page


def test_the_email_address_is_saved(alice):
    client = signed_in(alice)

    response = client.post("/accounts/settings/", {"email": "alice@example.com"})

    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.email == "alice@example.com"
    assert "Your email address was saved." in client.get("/accounts/settings/").content.decode()


def test_an_email_address_belongs_to_one_account(alice, bob):
    User.objects.filter(pk=bob.pk).update(email="shared@example.com")

    response = signed_in(alice).post("/accounts/settings/", {"email": "SHARED@example.com"})

    assert response.status_code == 400
    alice.refresh_from_db()
    assert alice.email == ""


# --- Password change ---------------------------------------------------------------


def test_password_change_keeps_this_session_and_ends_the_others(alice):
    here, elsewhere = signed_in(alice), signed_in(alice)
    assert here.get("/accounts/password_change/").status_code == 200

    response = here.post(
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 302 and response["Location"] == "/accounts/settings/"
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    assert here.get("/").status_code == 200
    assert elsewhere.get("/").status_code == 302


def test_password_change_needs_the_old_password(alice):
    response = signed_in(alice).post(
        "/accounts/password_change/",
        {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 200
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


# --- Password reset by email -------------------------------------------------------


def test_the_sign_in_page_links_to_the_password_reset(client):
    assert "/accounts/password_reset/" in client.get("/accounts/login/").content.decode()


def test_a_password_reset_link_is_emailed_and_sets_a_new_password(client, alice):
    User.objects.filter(pk=alice.pk).update(email="alice@example.com")
    assert client.get("/accounts/password_reset/").status_code == 200

    response = client.post("/accounts/password_reset/", {"email": "alice@example.com"})

    assert response.status_code == 302 and response["Location"] == "/accounts/password_reset/done/"
    assert client.get(response["Location"]).status_code == 200
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@example.com"]
    assert "alice" in mail.outbox[0].body and "&#" not in mail.outbox[0].body
    link = re.search(r"https?://[^/\s]+(/accounts/reset/\S+/)", str(mail.outbox[0].body))
    assert link is not None
    form = client.get(link.group(1), follow=True)  # Django swaps the token for a session one
    assert form.status_code == 200 and 'name="new_password1"' in form.content.decode()
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert done.status_code == 302 and done["Location"] == "/accounts/reset/done/"
    assert client.get(done["Location"]).status_code == 200
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)


def test_a_password_reset_for_an_unknown_address_sends_nothing_and_says_the_same(client, alice):
    response = client.post("/accounts/password_reset/", {"email": "nobody@example.com"})

    assert response.status_code == 302 and response["Location"] == "/accounts/password_reset/done/"
    assert mail.outbox == []


def test_a_used_or_forged_reset_link_is_refused(client, alice):
    page = client.get("/accounts/reset/MQ/forged-token/").content.decode()

    assert "invalid" in page and 'name="new_password1"' not in page


def test_mail_goes_to_the_console_unless_an_smtp_host_is_set(monkeypatch):
    import importlib

    from chatsite import settings as site_settings

    try:
        monkeypatch.delenv("EMAIL_HOST", raising=False)
        monkeypatch.delenv("EMAIL_BACKEND", raising=False)
        reloaded = importlib.reload(site_settings)
        console = reloaded.MAILERS["default"]
        assert console["BACKEND"].endswith("console.EmailBackend")
        assert reloaded.SILENCED_SYSTEM_CHECKS == ["mail.E001"]  # the documented default, even in production
        monkeypatch.setenv("EMAIL_HOST", "smtp.example.com")
        monkeypatch.setenv("EMAIL_PORT", "465")
        reloaded = importlib.reload(site_settings)
        assert reloaded.SILENCED_SYSTEM_CHECKS == []
        smtp = reloaded.MAILERS["default"]
        assert smtp["BACKEND"].endswith("smtp.EmailBackend")
        assert smtp["OPTIONS"]["host"] == "smtp.example.com"
        assert (smtp["OPTIONS"]["use_ssl"], smtp["OPTIONS"]["use_tls"]) == (True, False)
    finally:
        monkeypatch.undo()
        importlib.reload(site_settings)


# --- Sign out everywhere -----------------------------------------------------------


def test_sign_out_everywhere_ends_the_users_other_sessions_only(alice, bob):
    here, elsewhere, bobs = signed_in(alice), signed_in(alice), signed_in(bob)

    response = here.post("/accounts/settings/sessions/")

    assert response.status_code == 302 and response["Location"] == "/accounts/settings/"
    assert "Signed out of 1 other session(s)." in here.get("/accounts/settings/").content.decode()
    assert here.get("/").status_code == 200
    assert elsewhere.get("/").status_code == 302
    assert bobs.get("/").status_code == 200


def test_sign_out_everywhere_is_a_post(alice):
    assert signed_in(alice).get("/accounts/settings/sessions/").status_code == 405


# --- Delete my account and data ----------------------------------------------------


def test_deleting_the_account_needs_the_password(alice):
    response = signed_in(alice).post("/accounts/settings/delete/", {"password": "wrong"})

    assert response.status_code == 400
    assert "That is not your password." in response.content.decode()
    assert User.objects.filter(pk=alice.pk).exists()


def test_deleting_the_account_deletes_its_data_and_signs_it_out(alice, bob, builtin_roles):
    conversation_create(owner=alice)
    conversation_create(owner=bob)
    api_token_create(user=alice, name="cli")
    UserLimit.objects.create(user=alice, daily_tokens=10)
    client, elsewhere = signed_in(alice), signed_in(alice)

    response = client.post("/accounts/settings/delete/", {"password": PASSWORD})

    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert not User.objects.filter(username="alice").exists()
    assert not Conversation.objects.filter(owner_id=alice.pk).exists()
    assert not ApiToken.objects.filter(user_id=alice.pk).exists()
    assert not UserLimit.objects.filter(user_id=alice.pk).exists()
    assert Conversation.objects.filter(owner=bob).count() == 1
    assert client.get("/").status_code == 302
    assert elsewhere.get("/").status_code == 302


def test_the_chat_page_links_to_the_settings_page(alice, builtin_roles):
    page = signed_in(alice).get("/").content.decode()

    assert f'href="{reverse("account_settings")}"' in page


def test_a_conversations_role_is_named_in_the_pages_language(alice, builtin_roles):
    conversation = conversation_create(owner=alice, role_slug="teacher")
    client = signed_in(alice)

    page = client.get(f"/c/{conversation.pk}/", headers={"accept-language": "zh-hans"}).content.decode()

    assert 'class="role-badge">AI老师<' in page
    assert 'class="conv-role">AI老师<' in page

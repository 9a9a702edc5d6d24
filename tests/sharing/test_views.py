"""The share pages: the owner's, the public copy, continuing it, and the settings list."""

import pytest
from django.test import Client

from conversations.models import Attachment, Conversation, Message
from conversations.services import conversation_create
from roles.models import Role
from sharing.models import SharedLink
from sharing.services import share_publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def link(alice, tides) -> SharedLink:
    return share_publish(owner=alice, conversation_id=tides.pk, show_name=False)[0]


def test_anyone_with_the_link_reads_the_copy_without_signing_in(client, link):
    page = client.get(f"/s/{link.token}/")

    body = page.content.decode()
    assert page.status_code == 200
    assert "Why are there tides?" in body and "The <strong>Moon</strong> pulls the sea." in body
    assert f'href="/accounts/login/?next=/s/{link.token}/"' in body


def test_the_copy_is_not_for_search_engines_and_leaks_its_url_to_no_link(client, link):
    page = client.get(f"/s/{link.token}/")

    assert page["X-Robots-Tag"] == "noindex, nofollow"
    assert '<meta name="robots" content="noindex, nofollow">' in page.content.decode()
    assert page["Referrer-Policy"] == "same-origin"
    assert "no-store" in page["Cache-Control"]


def test_the_copy_shows_neither_the_system_prompt_nor_the_owner(client, alice, tides):
    alice.first_name = "Alice"
    alice.save()
    tides.system_prompt, tides.custom_instructions = "SECRET-PROMPT", "SECRET-INSTRUCTIONS"
    tides.save()
    link, _created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)

    body = client.get(f"/s/{link.token}/").content.decode()

    assert "SECRET-PROMPT" not in body and "SECRET-INSTRUCTIONS" not in body
    assert "Alice" not in body and "alice" not in body


def test_model_output_in_the_copy_is_sanitised(client, alice, tides):
    reply = tides.messages.get(author="assistant")
    reply.content = 'Look <script>alert(1)</script> <img src=x onerror="alert(2)"> [x](javascript:alert(3))'
    reply.save()
    link, _created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)

    body = client.get(f"/s/{link.token}/").content.decode()

    shown = body[body.index('<div class="msg-body markdown">') :]
    assert "<script>alert" not in shown and "<img" not in shown and 'href="javascript' not in shown
    assert "Look &lt;script&gt;alert(1)&lt;/script&gt;" in shown


def test_a_deleted_link_is_not_found(alice_client, client, link):
    deleted = alice_client.post(f"/shares/{link.pk}/delete/")

    assert deleted.status_code == 302
    assert client.get(f"/s/{link.token}/").status_code == 404


def test_the_owner_creates_the_link_from_the_conversations_share_page(alice_client, tides):
    before = alice_client.get(f"/c/{tides.pk}/share/").content.decode()

    created = alice_client.post(f"/c/{tides.pk}/share/", {"share": "1", "show_name": "1"})

    link = SharedLink.objects.get(conversation=tides)
    after = alice_client.get(f"/c/{tides.pk}/share/").content.decode()
    assert "Create a link" in before and "/s/" not in before
    assert created.status_code == 302 and created["Location"] == f"/c/{tides.pk}/share/"
    assert f"http://testserver/s/{link.token}/" in after and "Update the link" in after
    assert link.author_name == "alice"


def test_an_empty_conversation_says_there_is_nothing_to_share(alice_client, alice, builtin_roles):
    empty = conversation_create(owner=alice, role_slug="teacher")
    refused = alice_client.post(f"/c/{empty.pk}/share/", {"share": "1"})

    assert refused.status_code == 400
    assert "nothing to share yet" in refused.content.decode()


def test_a_post_that_does_not_say_it_shares_shares_nothing(alice_client, tides):
    refused = alice_client.post(f"/c/{tides.pk}/share/", {"show_name": "1"})

    assert refused.status_code == 400
    assert not SharedLink.objects.exists()


def test_someone_elses_share_page_and_link_are_not_found(bob_client, tides, link):
    assert bob_client.get(f"/c/{tides.pk}/share/").status_code == 404
    assert bob_client.post(f"/c/{tides.pk}/share/", {"share": "1"}).status_code == 404
    assert bob_client.post(f"/shares/{link.pk}/delete/").status_code == 404
    assert SharedLink.objects.filter(pk=link.pk).exists()


def test_a_signed_in_viewer_continues_the_conversation_as_their_own(bob_client, bob, link):
    continued = bob_client.post(f"/s/{link.token}/continue/")

    copy = Conversation.objects.get(owner=bob)
    assert continued.status_code == 302 and continued["Location"] == f"/c/{copy.pk}/"
    assert copy.messages.filter(author="assistant", content="The **Moon** pulls the sea.").exists()


def test_continuing_past_the_hours_limit_is_a_429_that_says_when_and_copies_nothing(
    settings, bob_client, bob, link
):
    settings.SHARE_CONTINUE_PER_HOUR = 2
    for _ in range(2):
        assert bob_client.post(f"/s/{link.token}/continue/").status_code == 302

    refused = bob_client.post(f"/s/{link.token}/continue/")

    assert refused.status_code == 429
    assert 3300 < int(refused["Retry-After"]) <= 3600
    page = refused.content.decode()
    assert "Too many conversations continued this hour. Try again in 60 minute(s)." in page
    assert Conversation.objects.filter(owner=bob).count() == 2


def test_the_continue_limit_is_each_users_own(settings, bob_client, alice_client, bob, link):
    settings.SHARE_CONTINUE_PER_HOUR = 1
    assert bob_client.post(f"/s/{link.token}/continue/").status_code == 302

    assert alice_client.post(f"/s/{link.token}/continue/").status_code == 302
    assert bob_client.post(f"/s/{link.token}/continue/").status_code == 429


def test_a_copy_that_fails_does_not_use_up_the_hours_allowance(settings, bob_client, bob, link):
    settings.SHARE_CONTINUE_PER_HOUR = 1
    Role.objects.update(is_active=False)  # no role to give the copy
    assert bob_client.post(f"/s/{link.token}/continue/").status_code == 400
    Role.objects.update(is_active=True)

    continued = bob_client.post(f"/s/{link.token}/continue/")

    assert continued.status_code == 302
    assert Conversation.objects.filter(owner=bob).count() == 1


def test_with_redis_down_continuing_still_copies(settings, own_redis, bob, link):
    settings.SHARE_CONTINUE_PER_HOUR = 1
    own_redis.stop()  # a real Redis, really gone: the count guards the database, not Redis
    viewer = Client()
    viewer.force_login(bob)  # the session is in the database too (cached_db)

    continued = viewer.post(f"/s/{link.token}/continue/")

    assert continued.status_code == 302
    assert Conversation.objects.filter(owner=bob).count() == 1


def test_a_signed_out_viewer_is_sent_to_sign_in_and_nothing_is_copied(client, link):
    continued = client.post(f"/s/{link.token}/continue/")

    assert continued.status_code == 302 and continued["Location"].startswith("/accounts/login/")
    assert Conversation.objects.count() == 1


def test_the_settings_page_lists_the_links_and_deletes_one(alice_client, link):
    listed = alice_client.get("/accounts/settings/").content.decode()

    deleted = alice_client.post(f"/shares/{link.pk}/delete/", {"back": "settings"})

    assert f'href="/s/{link.token}/"' in listed
    assert deleted["Location"] == "/accounts/settings/"
    assert not SharedLink.objects.exists()


def test_the_conversations_menu_offers_sharing(alice_client, tides):
    page = alice_client.get(f"/c/{tides.pk}/").content.decode()

    assert f'href="/c/{tides.pk}/share/"' in page


def test_images_are_not_shared_but_said_to_have_been_there(client, alice, tides):
    question = tides.messages.get(author="user")
    Attachment.objects.create(
        owner=alice, message=question, content_type="image/png", width=1, height=1, size=1
    )
    link, _created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)

    body = client.get(f"/s/{link.token}/").content.decode()

    assert "1 image was not shared" in body
    assert "/attachments/" not in body
    assert Message.objects.filter(conversation=tides).count() == 2


def test_an_interrupted_reply_says_so_in_the_copy(client, alice, tides):
    tides.messages.filter(author="assistant").update(status="interrupted")
    link, _created = share_publish(owner=alice, conversation_id=tides.pk, show_name=False)

    body = client.get(f"/s/{link.token}/").content.decode()

    assert "Interrupted: this reply is incomplete." in body


@pytest.mark.parametrize("token", ["no-such-token", "12", "a" * 100])
def test_continuing_an_unknown_link_is_not_found(bob_client, token):
    assert bob_client.post(f"/s/{token}/continue/").status_code == 404
    assert not Conversation.objects.exists()


def test_the_share_page_says_which_name_showing_it_would_show(alice_client, tides):
    page = alice_client.get(f"/c/{tides.pk}/share/").content.decode()

    assert "Show my name on the page: alice" in page


def test_the_shared_page_carries_the_sites_security_headers(client, link):
    page = client.get(f"/s/{link.token}/")

    csp = page["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-" not in csp and "frame-ancestors 'none'" in csp
    assert page["X-Frame-Options"] == "DENY"
    assert page["X-Content-Type-Options"] == "nosniff"
    assert page["Cross-Origin-Opener-Policy"] == "same-origin"

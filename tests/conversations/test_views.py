import io
import json
import re
import zipfile

import pytest
from django.test import Client
from django_redis import get_redis_connection
from redis.exceptions import ConnectionError as RedisConnectionError

from conversations.models import Conversation, Message
from conversations.selectors import MESSAGES_PAGE
from conversations.services import conversation_create
from providers.local_model_state import LocalModelState, local_model_state_write

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client(client, alice, builtin_roles):
    client.force_login(alice)
    return client


def test_the_chat_page_needs_a_signed_in_user(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_home_page_offers_the_active_roles(alice_client):
    page = alice_client.get("/").content.decode()

    for slug in ["assistant", "teacher", "programmer"]:
        assert f'data-role="{slug}"' in page


def test_the_page_never_shows_a_system_prompt_or_the_api_key(alice_client, alice, settings):
    settings.OPENAI_API_KEY = "sk-secret-test-key"
    conversation = conversation_create(owner=alice, role_slug="teacher")

    page = alice_client.get(f"/c/{conversation.pk}/").content.decode()

    assert conversation.system_prompt[:40] not in page
    assert "sk-secret-test-key" not in page


def test_a_conversation_page_shows_its_messages(alice_client, alice):
    conversation = conversation_create(owner=alice, title="Maths")
    Message.objects.create(conversation=conversation, author="user", content="What is 2+2?")
    Message.objects.create(conversation=conversation, author="assistant", content="**Four.**")

    page = alice_client.get(f"/c/{conversation.pk}/").content.decode()

    assert "What is 2+2?" in page
    assert "<strong>Four.</strong>" in page
    assert f'ws-connect="/ws/chat/{conversation.pk}/"' in page


def test_an_error_reply_shows_its_reason(alice_client, alice):
    conversation = conversation_create(owner=alice)
    Message.objects.create(conversation=conversation, author="user", content="Hi")
    Message.objects.create(
        conversation=conversation, author="assistant", status="error", error="The provider is down."
    )

    page = alice_client.get(f"/c/{conversation.pk}/").content.decode()

    assert "The provider is down." in page


def test_another_users_conversation_is_404(client, bob, alice, builtin_roles):
    conversation = conversation_create(owner=alice, title="Private")
    client.force_login(bob)

    assert client.get(f"/c/{conversation.pk}/").status_code == 404
    assert client.post(f"/c/{conversation.pk}/rename/", {"title": "x"}).status_code == 404
    assert client.post(f"/c/{conversation.pk}/delete/").status_code == 404
    assert Conversation.objects.get(pk=conversation.pk).title == "Private"


def test_the_sidebar_lists_only_my_conversations(alice_client, alice, bob):
    conversation_create(owner=alice, title="Mine")
    conversation_create(owner=bob, title="Bob's secret")

    page = alice_client.get("/").content.decode()

    assert "Mine" in page
    assert "Bob&#39;s secret" not in page and "Bob's secret" not in page


def test_rename_returns_the_new_sidebar_item(alice_client, alice):
    conversation = conversation_create(owner=alice, title="Old")

    response = alice_client.post(
        f"/c/{conversation.pk}/rename/", {"title": "New name"}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    assert f'id="conv-{conversation.pk}"' in response.content.decode()
    assert "New name" in response.content.decode()


def test_rename_to_an_empty_title_is_a_400(alice_client, alice):
    conversation = conversation_create(owner=alice, title="Old")

    response = alice_client.post(
        f"/c/{conversation.pk}/rename/", {"title": " "}, headers={"HX-Request": "true"}
    )

    assert response.status_code == 400


def test_deleting_the_open_conversation_sends_the_browser_home(alice_client, alice):
    conversation = conversation_create(owner=alice)

    response = alice_client.post(
        f"/c/{conversation.pk}/delete/",
        headers={"HX-Request": "true", "X-Chat-Current": str(conversation.pk)},
    )

    assert response["HX-Redirect"] == "/"
    assert not Conversation.objects.exists()


def test_csrf_is_enforced_on_rename(alice, builtin_roles):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    conversation = conversation_create(owner=alice, title="Old")

    response = client.post(f"/c/{conversation.pk}/rename/", {"title": "New"})

    assert response.status_code == 403


def test_pages_carry_a_strict_content_security_policy(alice_client):
    policy = alice_client.get("/")["Content-Security-Policy"]

    # No page has an inline script, so no nonce is ever issued: only same-origin files run.
    assert "script-src 'self';" in policy
    assert "style-src 'self';" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


def test_the_page_speaks_chinese_to_a_chinese_browser(alice_client):
    page = alice_client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).content.decode()

    assert '<html lang="zh-hans">' in page
    assert "新对话" in page and "今天有什么可以帮你？" in page


def test_the_language_switch_remembers_the_choice(alice_client):
    alice_client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})

    assert "退出登录" in alice_client.get("/").content.decode()


def test_the_page_says_when_the_tiny_local_model_is_in_use(alice_client, settings):
    settings.CHATSITE_LOCAL_MODEL_IN_USE = True

    page = alice_client.get("/").content.decode()

    assert "tiny built-in model" in page


def test_the_page_says_nothing_of_a_local_model_with_a_real_provider(alice_client, settings):
    settings.CHATSITE_LOCAL_MODEL_IN_USE = False

    assert "tiny built-in model" not in alice_client.get("/").content.decode()


def test_the_sign_in_page_can_switch_language(client):
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/accounts/login/"})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert "登录" in client.get("/accounts/login/").content.decode()


def test_a_streaming_reply_page_survives_a_redis_outage(alice, builtin_roles, own_redis):
    client = Client()
    client.force_login(alice)  # the session is in the database too (cached_db)
    conversation = conversation_create(owner=alice)
    Message.objects.create(conversation=conversation, author="user", content="q")
    Message.objects.create(
        conversation=conversation, author="assistant", status="streaming", content="so far"
    )
    own_redis.stop()  # a real Redis, really gone: every connection to it is refused
    with pytest.raises(RedisConnectionError):
        get_redis_connection("default").ping()

    response = client.get(f"/c/{conversation.pk}/")

    assert response.status_code == 200
    assert "so far" in response.content.decode()


# --- Export ------------------------------------------------------------------------


def conversation_with_words(owner, title="Plans for Sunday"):
    conversation = conversation_create(owner=owner, role_slug="teacher", title=title)
    Message.objects.create(conversation=conversation, author="user", content="周日去哪里？")
    Message.objects.create(conversation=conversation, author="assistant", content="Try the **park**.")
    return conversation


def test_a_conversation_downloads_as_markdown(alice_client, alice):
    conversation = conversation_with_words(alice)

    response = alice_client.get(f"/c/{conversation.pk}/export/")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="') and disposition.endswith('.md"')
    text = response.content.decode()
    assert text.startswith("# Plans for Sunday\n")
    assert "## You\n\n周日去哪里？" in text
    assert "Try the **park**." in text


def test_a_conversation_downloads_as_json_without_the_system_prompt(alice_client, alice):
    conversation = conversation_with_words(alice)
    Conversation.objects.filter(pk=conversation.pk).update(system_prompt="SECRET-PROMPT-MARKER")

    response = alice_client.get(f"/c/{conversation.pk}/export/", {"format": "json"})

    document = json.loads(response.content)
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert document["id"] == str(conversation.pk)
    assert [(m["author"], m["content"]) for m in document["messages"]] == [
        ("user", "周日去哪里？"),
        ("assistant", "Try the **park**."),
    ]
    assert "system_prompt" not in document
    assert b"SECRET-PROMPT-MARKER" not in response.content


def test_a_conversations_json_download_holds_the_users_own_note_and_instructions_and_its_summary(
    alice_client, alice
):
    conversation = conversation_with_words(alice)
    Conversation.objects.filter(pk=conversation.pk).update(
        custom_instructions="Answer briefly.", system_note="We are planning Sunday.", summary="Sunday plans."
    )

    response = alice_client.get(f"/c/{conversation.pk}/export/", {"format": "json"})

    document = json.loads(response.content)
    assert (document["custom_instructions"], document["system_note"], document["summary"]) == (
        "Answer briefly.",
        "We are planning Sunday.",
        "Sunday plans.",
    )


def test_an_unknown_export_format_is_a_400(alice_client, alice):
    conversation = conversation_with_words(alice)

    assert alice_client.get(f"/c/{conversation.pk}/export/", {"format": "pdf"}).status_code == 400


def test_someone_elses_conversation_does_not_export(alice_client, bob):
    bobs = conversation_with_words(bob, title="Bob's")

    assert alice_client.get(f"/c/{bobs.pk}/export/").status_code == 404


def test_everything_downloads_as_one_zip_of_the_callers_conversations(alice_client, alice, bob):
    mine = [conversation_with_words(alice, title=t) for t in ("First", "Second")]
    conversation_with_words(bob, title="Bob's own")

    response = alice_client.get("/conversations/export/")

    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = archive.namelist()
    assert len([n for n in names if n.startswith("json/")]) == 2
    assert len([n for n in names if n.startswith("markdown/")]) == 2
    everything = json.loads(archive.read("conversations.json"))
    assert [c["id"] for c in everything["conversations"]] == [str(c.pk) for c in mine]
    assert b"Bob's own" not in b"".join(archive.read(n) for n in names)


def test_the_sidebar_menu_and_the_settings_page_offer_the_downloads(alice_client, alice):
    conversation = conversation_with_words(alice)

    page = alice_client.get(f"/c/{conversation.pk}/").content.decode()
    settings_page = alice_client.get("/accounts/settings/").content.decode()

    assert f'href="/c/{conversation.pk}/export/?format=md"' in page
    assert f'href="/c/{conversation.pk}/export/?format=json"' in page
    assert 'href="/conversations/export/"' in settings_page


# --- What a reply cost -------------------------------------------------------------


def reply_with_usage(owner, **usage):
    conversation = conversation_create(owner=owner)
    Message.objects.create(conversation=conversation, author="user", content="q")
    Message.objects.create(conversation=conversation, author="assistant", content="a", **usage)
    return conversation


def usage_of(page: str) -> str:
    start = page.find('class="usage"')
    return page[start : page.find("</span>", start)] if start >= 0 else ""


def test_a_reply_shows_its_tokens_and_first_token_time_in_full_on_hover(alice_client, alice):
    conversation = reply_with_usage(alice, prompt_tokens=12, completion_tokens=240, first_token_ms=420)

    shown = usage_of(alice_client.get(f"/c/{conversation.pk}/").content.decode())

    assert 'title="12 prompt + 240 reply tokens · first token after 0.4 s"' in shown
    assert shown.endswith(">252 tokens · 0.4 s")


def test_the_cost_is_in_chinese_for_a_chinese_page(alice_client, alice):
    conversation = reply_with_usage(alice, prompt_tokens=3, completion_tokens=4, first_token_ms=1500)

    page = alice_client.get(f"/c/{conversation.pk}/", headers={"Accept-Language": "zh-hans"}).content.decode()

    assert "7 个 token · 1.5 s" in usage_of(page)


def test_a_reply_whose_provider_reported_no_usage_shows_only_its_time(alice_client, alice):
    conversation = reply_with_usage(alice, first_token_ms=260)

    shown = usage_of(alice_client.get(f"/c/{conversation.pk}/").content.decode())

    assert shown.endswith(">0.3 s") and "tokens" not in shown.split(">")[-1]


def test_a_reply_with_nothing_measured_shows_no_cost(alice_client, alice):
    conversation = reply_with_usage(alice)

    assert usage_of(alice_client.get(f"/c/{conversation.pk}/").content.decode()) == ""


@pytest.fixture
def local_model_state_file(settings, tmp_path):
    settings.CHATSITE_LOCAL_MODEL_IN_USE = True
    settings.CHATSITE_LOCAL_MODEL_STATE_FILE = str(tmp_path / "local-model.json")
    return tmp_path / "local-model.json"


def test_the_page_shows_the_local_model_being_prepared_and_asks_again(alice_client, local_model_state_file):
    building = LocalModelState("preparing", stage="building", percent=45)
    local_model_state_write(local_model_state_file, building)

    page = alice_client.get("/").content.decode()

    assert "The built-in local model is being prepared (compiling its server: 45%)" in page
    assert 'hx-get="/local-model/" hx-trigger="every 5s"' in page


def test_once_the_local_model_is_ready_its_note_stops_asking(alice_client, local_model_state_file):
    local_model_state_write(local_model_state_file, LocalModelState("ready"))

    note = alice_client.get("/local-model/").content.decode()

    assert "You are chatting with a tiny built-in model" in note
    assert "hx-get" not in note


def test_a_local_model_that_failed_says_no_model_is_available(alice_client, local_model_state_file):
    local_model_state_write(local_model_state_file, LocalModelState("failed", reason="needs cmake"))

    note = alice_client.get("/local-model/").content.decode()

    assert 'role="alert"' in note and "No model is available" in note
    assert "hx-get" not in note and "needs cmake" not in note


def test_a_long_conversation_opens_with_its_latest_messages_and_loads_earlier_ones_on_scroll(
    alice_client, alice
):
    conversation = conversation_create(owner=alice, title="Long")
    written = [
        Message.objects.create(conversation=conversation, author="user", content=f"Line {n:03}")
        for n in range(MESSAGES_PAGE + 5)
    ]

    page = alice_client.get(f"/c/{conversation.pk}/").content.decode()
    older = alice_client.get(f"/c/{conversation.pk}/messages/?before={written[5].pk}").content.decode()

    assert "Line 004" not in page
    assert "Line 005" in page
    assert f'hx-get="/c/{conversation.pk}/messages/?before={written[5].pk}"' in page
    # (each text is in the page twice: shown, and as what the copy button copies)
    assert list(dict.fromkeys(re.findall(r"Line \d+", older))) == [f"Line {n:03}" for n in range(5)]
    assert "older-messages" not in older  # nothing earlier: no more loading


@pytest.mark.parametrize("before", ["", "x", "-1", "²", "9" * 40])
def test_earlier_messages_need_a_message_id_to_load_before(alice_client, alice, before):
    conversation = conversation_create(owner=alice, title="Long")

    response = alice_client.get(f"/c/{conversation.pk}/messages/?before={before}")

    assert response.status_code == 400


def test_earlier_messages_of_someone_elses_conversation_are_404(alice_client, bob):
    theirs = conversation_create(owner=bob, title="Bob's")
    message = Message.objects.create(conversation=theirs, author="user", content="Private")

    response = alice_client.get(f"/c/{theirs.pk}/messages/?before={message.pk + 1}")

    assert response.status_code == 404
    assert b"Private" not in response.content

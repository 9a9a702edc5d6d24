import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from conversations.models import ApiToken, Conversation, Message
from conversations.services import conversation_create
from conversations.tokens import api_token_authenticate
from tests.conftest import second_provider_add
from tests.fake_openai import Reply

# `chat` runs its own event loop; its database work happens on another connection.
pytestmark = pytest.mark.django_db(transaction=True)


def run(*args, stdin=None):
    out, err = StringIO(), StringIO()
    options = {"stdin": stdin} if stdin is not None else {}
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


# --- chat -----------------------------------------------------------------------


def test_chat_message_prints_the_streamed_reply(alice, builtin_roles, fake_openai):
    fake_openai.queue_reply(Reply(tokens=["Photo", "synthesis", "."]))

    out, _ = run("chat", "--user", "alice", "--role", "teacher", "-m", "What feeds plants?")

    assert out == "Photosynthesis.\n"
    conversation = Conversation.objects.get(owner=alice)
    assert conversation.role.slug == "teacher"
    assert fake_openai.last_messages()[0]["content"] == conversation.system_prompt


def test_chat_conversation_appears_in_the_users_session_list(alice, builtin_roles, fake_openai):
    run("chat", "--user", "alice", "-m", "From the terminal")
    client = Client()
    client.force_login(alice)

    sessions = client.get("/chat/sessions").json()["sessions"]

    assert [s["title"] for s in sessions] == ["From the terminal"]
    assert sessions[0]["last_message"] == "Echo: From the terminal"


def test_chat_is_multi_turn_until_end_of_input(alice, builtin_roles, fake_openai):
    out, _ = run("chat", "--user", "alice", stdin=StringIO("first\n\nsecond\n"))

    assert out == "Echo: first\nEcho: second\n"
    assert [m["content"] for m in fake_openai.last_messages()[1:]] == ["first", "Echo: first", "second"]


def test_chat_session_continues_a_conversation(alice, builtin_roles, fake_openai):
    conversation = conversation_create(owner=alice, role_slug="programmer")
    run("chat", "--user", "alice", "--session", str(conversation.pk), "-m", "one")

    run("chat", "--user", "alice", "--session", str(conversation.pk), "-m", "two")

    assert Message.objects.filter(conversation=conversation).count() == 4


def test_chat_failed_reply_exits_non_zero(alice, builtin_roles, fake_openai):
    for _ in range(2):
        fake_openai.queue_reply(Reply(tokens=[], status=500))

    with pytest.raises(CommandError, match="HTTP 500"):
        run("chat", "--user", "alice", "-m", "hello")

    assert Message.objects.get(author="user").content == "hello"


def test_chat_unknown_user_is_a_clear_error(db):
    with pytest.raises(CommandError, match="No active user 'nobody'"):
        run("chat", "--user", "nobody", "-m", "hi")


def test_chat_unknown_role_is_a_clear_error(alice, builtin_roles):
    with pytest.raises(CommandError, match="Unknown role: pirate"):
        run("chat", "--user", "alice", "--role", "pirate", "-m", "hi")


def test_chat_cannot_continue_another_users_conversation(alice, bob, builtin_roles, fake_openai):
    conversation = conversation_create(owner=bob)

    with pytest.raises(CommandError, match="has no conversation"):
        run("chat", "--user", "alice", "--session", str(conversation.pk), "-m", "hi")

    assert fake_openai.requests == []


# --- llm_check ------------------------------------------------------------------


def test_llm_check_passes_against_a_working_provider(fake_openai):
    out, _ = run("llm_check")

    assert "ok   reach the base URL" in out
    assert "ok   model listed: fake-model" in out
    assert "ok   1-token completion" in out
    assert fake_openai.requests[-1].body["max_tokens"] == 1


def test_llm_check_fails_when_the_model_is_not_listed(fake_openai, settings):
    settings.OPENAI_MODEL = "missing-model"

    with pytest.raises(CommandError, match="model listed"):
        run("llm_check")


def test_llm_check_fails_when_the_provider_is_unreachable(settings):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
    settings.OPENAI_MAX_RETRIES = 0

    with pytest.raises(CommandError, match="reach the base URL"):
        run("llm_check")


@pytest.mark.django_db
def test_llm_check_checks_a_provider_added_in_the_admin_with_its_first_model(fake_openai, second_fake):
    second_provider_add(second_fake)

    out, _ = run("llm_check", "--provider", "second")

    assert "ok   model listed: second-large" in out
    assert second_fake.requests[-1].body["model"] == "second-large"
    assert second_fake.requests[-1].headers["authorization"] == "Bearer second-secret-key"
    assert fake_openai.requests == []


@pytest.mark.django_db
def test_llm_check_of_an_unknown_provider_fails(fake_openai):
    with pytest.raises(CommandError, match="No enabled provider is named 'nowhere'"):
        run("llm_check", "--provider", "nowhere")


def test_llm_check_fails_without_a_provider(no_provider):
    with pytest.raises(CommandError, match="configuration"):
        run("llm_check")


# --- export_conversations -------------------------------------------------------


def _conversation_with_messages(owner, title="Rainbows"):
    conversation = conversation_create(owner=owner, role_slug="teacher", title=title)
    Message.objects.create(conversation=conversation, author="user", content="Why are rainbows round?")
    Message.objects.create(conversation=conversation, author="assistant", content="Because **optics**.")
    return conversation


def test_export_json_holds_every_message(alice, bob, builtin_roles):
    _conversation_with_messages(alice)
    _conversation_with_messages(bob, title="Bob's")

    out, _ = run("export_conversations", "--user", "alice", "--format", "json")

    document = json.loads(out)
    assert [c["title"] for c in document["conversations"]] == ["Rainbows"]
    assert [m["content"] for m in document["conversations"][0]["messages"]] == [
        "Why are rainbows round?",
        "Because **optics**.",
    ]


def test_export_markdown_to_a_folder_writes_one_file_each(alice, builtin_roles, tmp_path):
    _conversation_with_messages(alice, title="First")
    _conversation_with_messages(alice, title="Second")

    run("export_conversations", "--user", "alice", "--out", str(tmp_path / "out"))

    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(files) == 2 and all(name.endswith(".md") for name in files)
    text = next((tmp_path / "out").glob("*-first-*.md")).read_text()
    assert text.startswith("# First")
    assert "Because **optics**." in text


def test_export_unknown_user_is_a_clear_error(db):
    with pytest.raises(CommandError, match="No user 'ghost'"):
        run("export_conversations", "--user", "ghost")


# --- purge_conversations --------------------------------------------------------


def _aged(owner, days):
    conversation = conversation_create(owner=owner, title=f"{days} days old")
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=timezone.now() - timedelta(days=days))
    return conversation


def test_purge_deletes_only_older_conversations(alice, builtin_roles):
    _aged(alice, 100)
    _aged(alice, 10)

    out, _ = run("purge_conversations", "--older-than", "90d")

    assert "Deleted 1 conversation(s)" in out
    assert list(Conversation.objects.values_list("title", flat=True)) == ["10 days old"]


def test_purge_dry_run_deletes_nothing(alice, builtin_roles):
    _aged(alice, 100)

    out, _ = run("purge_conversations", "--older-than", "90d", "--dry-run")

    assert "Would delete 1 conversation(s)" in out
    assert Conversation.objects.count() == 1


def test_purge_for_one_user_leaves_others(alice, bob, builtin_roles):
    _aged(alice, 100)
    _aged(bob, 100)

    run("purge_conversations", "--older-than", "2w", "--user", "bob")

    assert list(Conversation.objects.values_list("owner__username", flat=True)) == ["alice"]


def test_purge_counts_an_age_in_hours(alice, builtin_roles):
    for hours in [5, 3]:
        conversation = conversation_create(owner=alice, title=f"{hours} hours old")
        Conversation.objects.filter(pk=conversation.pk).update(
            updated_at=timezone.now() - timedelta(hours=hours)
        )

    out, _ = run("purge_conversations", "--older-than", "4h")

    assert "Deleted 1 conversation(s)" in out
    assert list(Conversation.objects.values_list("title", flat=True)) == ["3 hours old"]


@pytest.mark.parametrize("age", ["90", "90x", "0d", "-5d", ""])
def test_purge_rejects_a_malformed_age(age, db):
    with pytest.raises(CommandError, match="--older-than takes an age"):
        run("purge_conversations", f"--older-than={age}")


# --- api_token ------------------------------------------------------------------


def test_api_token_create_prints_a_working_token_once(alice):
    out, err = run("api_token", "create", "--user", "alice", "--name", "laptop")

    raw = out.strip()
    assert api_token_authenticate(raw=raw) == alice
    assert "not shown again" in err
    token = ApiToken.objects.get()
    assert raw not in (token.key_hash, token.prefix)


def test_api_token_list_never_shows_secrets(alice):
    out, _ = run("api_token", "create", "--user", "alice")

    listing, _ = run("api_token", "list")

    assert "alice" in listing and "active" in listing
    assert out.strip() not in listing


def test_api_token_revoke_stops_the_token_working(alice):
    out, _ = run("api_token", "create", "--user", "alice")
    token = ApiToken.objects.get()

    run("api_token", "revoke", str(token.pk))

    assert api_token_authenticate(raw=out.strip()) is None
    assert "revoked" in run("api_token", "list")[0]


def test_api_token_revoke_unknown_id_is_a_clear_error(db):
    with pytest.raises(CommandError, match="No token 404"):
        run("api_token", "revoke", "404")

"""The admin's read-only view of users' conversations, and its labels in Chinese."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from conversations.models import Conversation, Message
from conversations.services import conversation_create
from conversations.tokens import api_token_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, builtin_roles):
    admin = get_user_model().objects.create_superuser(username="root", password="x-admin-password-1")
    client.force_login(admin)
    return client


@pytest.fixture
def conversation(alice, builtin_roles):
    conversation = conversation_create(owner=alice, title="Photosynthesis")
    Message.objects.create(conversation=conversation, author="user", content="What is chlorophyll?")
    Message.objects.create(conversation=conversation, author="assistant", content="A green pigment.")
    return conversation


def test_staff_can_list_and_read_conversations(admin_client, conversation):
    listing = admin_client.get("/admin/conversations/conversation/")
    page = admin_client.get(reverse("admin:conversations_conversation_change", args=[conversation.pk]))

    assert listing.status_code == 200 and "Photosynthesis" in listing.content.decode()
    assert "alice" in listing.content.decode()
    assert page.status_code == 200
    assert "What is chlorophyll?" in page.content.decode() and "A green pigment." in page.content.decode()


def test_the_conversation_admin_is_read_only(admin_client, conversation):
    change_url = reverse("admin:conversations_conversation_change", args=[conversation.pk])
    page = admin_client.get(change_url).content.decode()

    assert admin_client.get(reverse("admin:conversations_conversation_add")).status_code == 403
    assert 'name="title"' not in page and 'name="messages-0-content"' not in page
    admin_client.post(change_url, {"title": "Changed", "messages-0-content": "Changed"})
    conversation.refresh_from_db()
    assert conversation.title == "Photosynthesis"
    assert not Message.objects.filter(content="Changed").exists()


def test_the_conversation_admin_can_be_turned_off(admin_client, conversation, settings):
    settings.CHATSITE_ADMIN_CONVERSATIONS = False

    assert admin_client.get("/admin/conversations/conversation/").status_code == 403
    assert (
        admin_client.get(
            reverse("admin:conversations_conversation_change", args=[conversation.pk])
        ).status_code
        == 403
    )
    assert "/admin/conversations/conversation/" not in admin_client.get("/admin/").content.decode()
    assert "/admin/conversations/apitoken/" in admin_client.get("/admin/").content.decode()


def test_users_who_are_not_staff_are_sent_to_the_admin_sign_in(client, alice, conversation):
    client.force_login(alice)

    response = client.get("/admin/conversations/conversation/")

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_deleting_a_user_in_the_admin_deletes_their_conversations(admin_client, alice, conversation):
    response = admin_client.post(reverse("admin:auth_user_delete", args=[alice.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not Conversation.objects.filter(pk=conversation.pk).exists()


def test_the_admin_speaks_chinese(admin_client, alice, conversation):
    api_token_create(user=alice, name="cli")  # the actions show above a list that has rows
    zh = {"Accept-Language": "zh-CN"}
    index = admin_client.get("/admin/", headers=zh).content.decode()
    page = admin_client.get(
        reverse("admin:conversations_conversation_change", args=[conversation.pk]), headers=zh
    ).content.decode()
    tokens = admin_client.get("/admin/conversations/apitoken/", headers=zh).content.decode()

    assert "API 令牌" in index and "用户限额" in index and "AI 角色" in index
    assert "所有者" in page and "系统提示词" in page and "消息" in page and "助手" in page
    assert "吊销所选令牌" in tokens

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from conversations import limits
from conversations.models import ApiToken
from conversations.sending import message_send
from conversations.services import ChatError, conversation_create
from roles.models import Role
from roles.selectors import role_list_active
from tests.conftest import wait_for_reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, builtin_roles):
    admin = get_user_model().objects.create_superuser(username="root", password="x-admin-password-1")
    client.force_login(admin)
    return client


def test_changelist_lists_the_roles(admin_client):
    response = admin_client.get(reverse("admin:roles_role_changelist"))

    assert response.status_code == 200
    assert "Teacher" in response.content.decode() and "AI老师" in response.content.decode()


def test_deactivate_action_hides_the_role_from_users(admin_client):
    role_list_active()  # warm the cache
    teacher = Role.objects.get(slug="teacher")

    admin_client.post(
        reverse("admin:roles_role_changelist"),
        {"action": "deactivate", "_selected_action": [teacher.pk]},
    )

    assert "teacher" not in [r.slug for r in role_list_active()]


def test_editing_a_prompt_in_the_admin_saves_it(admin_client):
    teacher = Role.objects.get(slug="teacher")

    response = admin_client.post(
        reverse("admin:roles_role_change", args=[teacher.pk]),
        {
            "name": "Tutor",
            "slug": "teacher",
            "description": "d",
            "is_active": "on",
            "sort_order": 5,
            "system_prompt": "New prompt",
            "model": "",
            "temperature": "0.30",
        },
    )

    assert response.status_code == 302
    teacher.refresh_from_db()
    assert teacher.system_prompt == "New prompt"
    assert [r.name for r in role_list_active() if r.slug == "teacher"] == ["Tutor"]


def test_the_admin_edits_the_chinese_name_and_description(admin_client):
    teacher = Role.objects.get(slug="teacher")
    form = admin_client.get(reverse("admin:roles_role_change", args=[teacher.pk])).content.decode()
    assert 'name="name_zh_hans"' in form and 'name="description_zh_hans"' in form

    admin_client.post(
        reverse("admin:roles_role_change", args=[teacher.pk]),
        {
            "name": "Teacher",
            "name_zh_hans": "导师",
            "slug": "teacher",
            "description": "d",
            "description_zh_hans": "中文描述",
            "is_active": "on",
            "sort_order": 5,
            "system_prompt": "p",
            "model": "",
            "temperature": "0.70",
        },
    )

    assert [r.name for r in role_list_active(language="zh-hans") if r.slug == "teacher"] == ["导师"]


def test_the_role_admin_speaks_chinese(admin_client):
    page = admin_client.get(
        reverse("admin:roles_role_changelist"), headers={"Accept-Language": "zh-CN"}
    ).content.decode()
    form = admin_client.get(
        reverse("admin:roles_role_change", args=[Role.objects.get(slug="teacher").pk]),
        headers={"Accept-Language": "zh-CN"},
    ).content.decode()

    assert "AI 角色" in page and "启用所选角色" in page and "停用所选角色" in page
    assert "系统提示词" in form and "名称（中文）" in form and "温度" in form


# --- User limits and API tokens (the conversations app's admin) ----------------------


@pytest.mark.django_db(transaction=True)
def test_a_user_limit_set_in_the_admin_refuses_that_users_next_message(
    admin_client, alice, settings, fake_openai
):
    settings.CHAT_LIMIT_MESSAGES_PER_MINUTE = 100
    response = admin_client.post(
        reverse("admin:conversations_userlimit_add"),
        {"user": alice.pk, "messages_per_minute": "1", "concurrent_replies": "", "daily_tokens": ""},
    )
    assert response.status_code == 302
    conversation = conversation_create(owner=alice)

    async def two_messages() -> None:
        exchange = await message_send(owner=alice, conversation_id=conversation.pk, content="one")
        await wait_for_reply(exchange.reply.pk)
        with pytest.raises(ChatError, match="1 a minute"):
            second = await message_send(owner=alice, conversation_id=conversation.pk, content="two")
            await wait_for_reply(second.reply.pk)  # (not refused: let it finish, then fail)

    async_to_sync(two_messages)()
    # Only the field set in the admin is hers; the others stay the site's.
    assert limits.limits_for(user_id=alice.pk).concurrent_replies == settings.CHAT_LIMIT_CONCURRENT_REPLIES


@pytest.mark.django_db(transaction=True)  # the API reads the token from another thread
def test_an_api_token_made_in_the_admin_works_once_shown_and_stops_when_revoked(admin_client, alice):
    response = admin_client.post(
        reverse("admin:conversations_apitoken_add"), {"user": alice.pk, "name": "from the admin"}, follow=True
    )
    (shown,) = [str(m) for m in response.context["messages"] if "New API token" in str(m)]
    raw = shown.rsplit(" ", 1)[-1]
    token = ApiToken.objects.get(user=alice, name="from the admin")
    assert raw not in {token.key_hash, token.prefix}  # only its hash is kept
    api = Client()
    roles = api.get("/roles", headers={"Authorization": f"Bearer {raw}"})
    assert roles.status_code == 200 and roles.json()["roles"]

    admin_client.post(
        reverse("admin:conversations_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )

    assert api.get("/roles", headers={"Authorization": f"Bearer {raw}"}).status_code == 401

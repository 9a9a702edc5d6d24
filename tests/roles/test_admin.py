import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from roles.models import Role
from roles.selectors import role_list_active

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, builtin_roles):
    admin = get_user_model().objects.create_superuser(username="root", password="x-admin-password-1")
    client.force_login(admin)
    return client


def test_changelist_lists_the_roles(admin_client):
    response = admin_client.get(reverse("admin:roles_role_changelist"))

    assert response.status_code == 200
    assert "AI老师 / Teacher" in response.content.decode()


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

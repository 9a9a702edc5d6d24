import pytest
from django_redis import get_redis_connection

from roles.builtin import BUILTIN_ROLES
from roles.models import Role
from roles.selectors import role_list_active
from roles.services import role_load_builtins, role_save, role_set_active

pytestmark = pytest.mark.django_db


def test_load_builtins_creates_the_demo_slugs():
    result = role_load_builtins()

    assert sorted(result.created) == ["assistant", "programmer", "teacher"]
    assert set(Role.objects.values_list("slug", flat=True)) == {"assistant", "teacher", "programmer"}


def test_load_builtins_twice_creates_nothing_more():
    role_load_builtins()

    second = role_load_builtins()

    assert second.created == []
    assert Role.objects.count() == len(BUILTIN_ROLES)


def test_load_builtins_keeps_an_admins_edits():
    role_load_builtins()
    Role.objects.filter(slug="teacher").update(system_prompt="Edited by an admin.", is_active=False)

    role_load_builtins()

    teacher = Role.objects.get(slug="teacher")
    assert teacher.system_prompt == "Edited by an admin."
    assert teacher.is_active is False


def test_role_save_drops_the_cached_list():
    role_load_builtins()
    assert [r.slug for r in role_list_active()] == ["assistant", "teacher", "programmer"]
    teacher = Role.objects.get(slug="teacher")
    teacher.name = "Tutor"

    role_save(role=teacher)

    assert [r.name for r in role_list_active() if r.slug == "teacher"] == ["Tutor"]


def test_role_set_active_drops_the_cached_list():
    role_load_builtins()
    role_list_active()

    role_set_active(roles=Role.objects.filter(slug="programmer"), active=False)

    assert [r.slug for r in role_list_active()] == ["assistant", "teacher"]


def test_active_list_is_cached_in_redis():
    role_load_builtins()

    role_list_active()

    assert get_redis_connection("default").keys("*roles:active*")

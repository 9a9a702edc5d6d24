import importlib

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


def test_load_builtins_gives_the_roles_their_chinese_names():
    role_load_builtins()

    names = dict(Role.objects.values_list("slug", "name_zh_hans"))

    assert names == {"assistant": "智能助手", "teacher": "AI老师", "programmer": "编程专家"}
    assert all(Role.objects.values_list("description_zh_hans", flat=True))


def test_load_builtins_keeps_an_admins_chinese_edits():
    role_load_builtins()
    Role.objects.filter(slug="teacher").update(name_zh_hans="导师", description_zh_hans="")

    role_load_builtins()

    teacher = Role.objects.get(slug="teacher")
    assert (teacher.name_zh_hans, teacher.description_zh_hans) == ("导师", "")


# --- The migration that translated the built-in roles of an existing install ----------


def _translate_existing_roles() -> None:
    from django.apps import apps

    migration = importlib.import_module("roles.migrations.0004_builtin_role_translations")
    migration.translate(apps, None)


def test_existing_builtin_roles_get_their_chinese_names_once():
    role_load_builtins()
    # As an install from before the translations holds them.
    Role.objects.filter(slug="teacher").update(
        name="AI老师 / Teacher", name_zh_hans="", description_zh_hans=""
    )

    _translate_existing_roles()

    teacher = Role.objects.get(slug="teacher")
    assert (teacher.name, teacher.name_zh_hans) == ("Teacher", "AI老师")
    assert teacher.description_zh_hans.startswith("耐心的老师")


def test_the_migration_keeps_what_an_admin_changed():
    role_load_builtins()
    Role.objects.filter(slug="teacher").update(
        name="Tutor", name_zh_hans="", description="Our own words.", description_zh_hans=""
    )
    Role.objects.filter(slug="assistant").update(name_zh_hans="助理")

    _translate_existing_roles()

    teacher = Role.objects.get(slug="teacher")
    assert (teacher.name, teacher.name_zh_hans, teacher.description_zh_hans) == ("Tutor", "", "")
    assert Role.objects.get(slug="assistant").name_zh_hans == "助理"

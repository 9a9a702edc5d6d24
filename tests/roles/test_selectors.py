import pytest
from django.utils import translation

from roles.models import Role
from roles.selectors import role_display_name, role_get_default, role_list_active
from roles.services import role_save

pytestmark = pytest.mark.django_db


def test_active_list_never_carries_the_system_prompt(builtin_roles):
    summaries = role_list_active()

    assert summaries
    assert all(not hasattr(summary, "system_prompt") for summary in summaries)


def test_active_list_leaves_out_inactive_roles(builtin_roles):
    Role.objects.filter(slug="assistant").update(is_active=False)

    assert "assistant" not in [r.slug for r in role_list_active()]


def test_default_role_is_the_assistant(builtin_roles):
    default = role_get_default()

    assert default is not None
    assert default.slug == "assistant"


def test_default_role_falls_back_to_the_first_active(builtin_roles):
    Role.objects.filter(slug="assistant").update(is_active=False)

    default = role_get_default()

    assert default is not None
    assert default.slug == "teacher"


# --- Names and descriptions per language ---------------------------------------------


def test_roles_are_named_in_the_pages_language(builtin_roles):
    chinese = {r.slug: r for r in role_list_active(language="zh-hans")}
    english = {r.slug: r for r in role_list_active(language="en")}

    names = [chinese[slug].name for slug in ["assistant", "teacher", "programmer"]]
    assert names == ["智能助手", "AI老师", "编程专家"]
    assert chinese["teacher"].description.startswith("耐心的老师")
    assert english["teacher"].name == "Teacher" and english["teacher"].description.startswith("A patient")


def test_the_active_language_is_the_default(builtin_roles):
    with translation.override("zh-hans"):
        assert "AI老师" in [r.name for r in role_list_active()]
    assert "Teacher" in [r.name for r in role_list_active()]


def test_a_role_without_a_chinese_name_falls_back_to_the_default_language(builtin_roles):
    Role.objects.create(slug="poet", name="Poet", description="Writes verse.", system_prompt="p")

    poet = next(r for r in role_list_active(language="zh-hans") if r.slug == "poet")

    assert (poet.name, poet.description) == ("Poet", "Writes verse.")


def test_role_display_name_for_any_language_variant(builtin_roles):
    teacher = Role.objects.get(slug="teacher")

    assert role_display_name(teacher, "zh-hans") == role_display_name(teacher, "zh-cn") == "AI老师"
    assert role_display_name(teacher, "en") == role_display_name(teacher, "fr") == "Teacher"
    with translation.override("zh-hans"):
        assert teacher.display_name == "AI老师" and teacher.display_description.startswith("耐心")


def test_an_edit_refreshes_the_cached_list_in_every_language(builtin_roles):
    role_list_active(language="en"), role_list_active(language="zh-hans")  # warm both
    teacher = Role.objects.get(slug="teacher")
    teacher.name_zh_hans = "导师"

    role_save(role=teacher)

    assert "导师" in [r.name for r in role_list_active(language="zh-hans")]


def test_the_chat_page_shows_the_role_picker_in_chinese(client, alice, builtin_roles):
    client.force_login(alice)

    page = client.get("/", headers={"Accept-Language": "zh-CN"}).content.decode()

    assert "AI老师" in page and "编程专家" in page

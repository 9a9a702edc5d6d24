import pytest

from roles.models import Role
from roles.selectors import role_get_default, role_list_active

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

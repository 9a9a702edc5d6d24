import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from roles.models import Role
from roles.selectors import role_list_active

pytestmark = pytest.mark.django_db

NEW_ROLE = {"slug": "poet", "name": "诗人 / Poet", "system_prompt": "Answer in verse."}


def run(*args: str) -> str:
    out = StringIO()
    call_command("roles", *args, stdout=out)
    return out.getvalue()


def roles_file(tmp_path: Path, data: object) -> str:
    path = tmp_path / "roles.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def snapshot() -> list[tuple[object, ...]]:
    return list(Role.objects.values_list("slug", "name", "system_prompt", "temperature", "updated_at"))


# --- export -----------------------------------------------------------------------


def test_export_lists_the_builtin_slugs(builtin_roles):
    out = run("export")

    assert [role["slug"] for role in json.loads(out)["roles"]] == ["assistant", "teacher", "programmer"]


def test_export_writes_chinese_text_as_is(builtin_roles):
    Role.objects.filter(slug="teacher").update(system_prompt="你是一位耐心的老师。")

    out = run("export")

    assert "你是一位耐心的老师。" in out
    assert "\\u" not in out


def test_export_includes_inactive_roles(builtin_roles):
    Role.objects.filter(slug="programmer").update(is_active=False)

    roles = json.loads(run("export"))["roles"]

    assert [role["is_active"] for role in roles if role["slug"] == "programmer"] == [False]


def test_export_gives_the_temperature_as_a_two_decimal_string(builtin_roles):
    roles = json.loads(run("export"))["roles"]

    assert {role["temperature"] for role in roles} == {"0.70"}


def test_export_leaves_out_timestamps(builtin_roles):
    role = json.loads(run("export"))["roles"][0]

    assert "created_at" not in role
    assert "updated_at" not in role


def test_export_file_writes_the_file(builtin_roles, tmp_path):
    path = tmp_path / "roles.json"

    run("export", "--file", str(path))

    assert len(json.loads(path.read_text(encoding="utf-8"))["roles"]) == 3


# --- import -----------------------------------------------------------------------


def test_export_then_import_reports_every_role_unchanged(builtin_roles, tmp_path):
    path = tmp_path / "roles.json"
    run("export", "--file", str(path))

    out = run("import", str(path))

    assert out.splitlines() == [
        "unchanged assistant",
        "unchanged teacher",
        "unchanged programmer",
        "Imported 3 role(s): 0 created, 0 updated, 3 unchanged.",
    ]


def test_export_then_import_writes_nothing(builtin_roles, tmp_path):
    path = tmp_path / "roles.json"
    run("export", "--file", str(path))
    before = snapshot()

    run("import", str(path))

    assert snapshot() == before


def test_import_creates_a_role_that_appears_in_the_active_list(builtin_roles, tmp_path):
    out = run("import", roles_file(tmp_path, {"roles": [NEW_ROLE]}))

    assert out.splitlines()[0] == "created poet"
    assert "poet" in [role.slug for role in role_list_active()]


def test_import_drops_the_cached_active_list(builtin_roles, tmp_path, django_capture_on_commit_callbacks):
    role_list_active()

    with django_capture_on_commit_callbacks(execute=True):
        run("import", roles_file(tmp_path, {"roles": [NEW_ROLE]}))

    assert "poet" in [role.slug for role in role_list_active()]


def test_import_accepts_a_bare_list(db, tmp_path):
    run("import", roles_file(tmp_path, [NEW_ROLE]))

    assert Role.objects.filter(slug="poet").exists()


def test_import_accepts_a_number_temperature(db, tmp_path):
    run("import", roles_file(tmp_path, [{**NEW_ROLE, "temperature": 1.25}]))

    assert str(Role.objects.get(slug="poet").temperature) == "1.25"


def test_import_updates_a_changed_prompt_and_names_the_field(builtin_roles, tmp_path):
    teacher = {"slug": "teacher", "name": "Teacher", "system_prompt": "Be brief."}

    out = run("import", roles_file(tmp_path, [teacher]))

    assert out.splitlines()[0] == "updated teacher: system_prompt"
    assert Role.objects.get(slug="teacher").system_prompt == "Be brief."


def test_import_keeps_the_fields_a_role_leaves_out(builtin_roles, tmp_path):
    Role.objects.filter(slug="teacher").update(description="Kept.", sort_order=5)
    teacher = {"slug": "teacher", "name": "Teacher", "system_prompt": "Be brief."}

    run("import", roles_file(tmp_path, [teacher]))

    assert Role.objects.filter(slug="teacher", description="Kept.", sort_order=5).exists()


def test_import_dry_run_reports_what_would_change(builtin_roles, tmp_path):
    teacher = {"slug": "teacher", "name": "Tutor", "system_prompt": "Be brief."}

    out = run("import", roles_file(tmp_path, [NEW_ROLE, teacher]), "--dry-run")

    assert out.splitlines() == [
        "would create poet",
        "would update teacher: name, system_prompt",
        "Dry run, nothing written: 1 to create, 1 to update, 0 unchanged.",
    ]


def test_import_dry_run_writes_nothing(builtin_roles, tmp_path):
    teacher = {"slug": "teacher", "name": "Teacher", "system_prompt": "Be brief."}
    before = snapshot()

    run("import", roles_file(tmp_path, [NEW_ROLE, teacher]), "--dry-run")

    assert snapshot() == before


def test_import_rejects_invalid_json(builtin_roles, tmp_path):
    path = tmp_path / "roles.json"
    path.write_text('{"roles": [', encoding="utf-8")
    before = snapshot()

    with pytest.raises(CommandError, match="not valid JSON"):
        run("import", str(path))
    assert snapshot() == before


def test_import_rejects_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        run("import", str(tmp_path / "missing.json"))


def test_import_rejects_the_wrong_shape(db, tmp_path):
    with pytest.raises(CommandError, match="Expected a list of roles"):
        run("import", roles_file(tmp_path, {"roles": "poet"}))


def test_import_rejects_a_role_without_a_slug(builtin_roles, tmp_path):
    before = snapshot()

    with pytest.raises(CommandError, match=r"Role 1 \(name .*\): missing required key\(s\) slug"):
        run("import", roles_file(tmp_path, [{"name": "Poet", "system_prompt": "Verse."}]))
    assert snapshot() == before


def test_import_rejects_a_temperature_of_5(builtin_roles, tmp_path):
    before = snapshot()

    with pytest.raises(CommandError, match=r'Role 1 \("poet"\): temperature: must be between 0 and 2'):
        run("import", roles_file(tmp_path, [{**NEW_ROLE, "temperature": 5}]))
    assert snapshot() == before


def test_import_rejects_an_invalid_slug(db, tmp_path):
    with pytest.raises(CommandError, match=r'Role 1 \("no spaces"\): slug:'):
        run("import", roles_file(tmp_path, [{**NEW_ROLE, "slug": "no spaces"}]))


def test_import_rejects_unknown_keys(db, tmp_path):
    with pytest.raises(CommandError, match=r'Role 1 \("poet"\): unknown key\(s\) colour'):
        run("import", roles_file(tmp_path, [{**NEW_ROLE, "colour": "blue"}]))


def test_import_rejects_a_slug_given_twice(db, tmp_path):
    with pytest.raises(CommandError, match=r'Role 2 \("poet"\): slug: appears more than once'):
        run("import", roles_file(tmp_path, [NEW_ROLE, NEW_ROLE]))


def test_import_writes_nothing_when_one_role_is_bad(builtin_roles, tmp_path):
    teacher = {"slug": "teacher", "name": "Teacher", "system_prompt": "Be brief."}
    before = snapshot()

    with pytest.raises(CommandError, match=r'Role 2 \("poet"\): temperature'):
        run("import", roles_file(tmp_path, [teacher, {**NEW_ROLE, "temperature": "5"}]))
    assert snapshot() == before

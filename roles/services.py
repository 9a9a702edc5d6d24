"""Writes to roles. Every change goes through here so the cached active list stays true."""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction

from chatsite.caches import shared_cache
from roles.builtin import BUILTIN_ROLES
from roles.models import Role
from roles.selectors import ROLE_EXPORT_FIELDS, active_roles_cache_keys


def role_cache_clear() -> None:
    shared_cache().delete_many(active_roles_cache_keys())


@dataclass(frozen=True)
class BuiltinLoadResult:
    created: list[str]
    kept: list[str]


@transaction.atomic
def role_load_builtins() -> BuiltinLoadResult:
    """Create the built-in roles that are missing, by slug.

    A role that already exists is left exactly as it is, so an admin's edits
    (prompt, name, deactivation) survive every later `./run`.
    """
    created: list[str] = []
    kept: list[str] = []
    for data in BUILTIN_ROLES:
        _, was_created = Role.objects.get_or_create(
            slug=data["slug"],
            defaults={
                "name": data["name"],
                "name_zh_hans": data["name_zh_hans"],
                "description": data["description"],
                "description_zh_hans": data["description_zh_hans"],
                "system_prompt": data["system_prompt"],
                "sort_order": data["sort_order"],
            },
        )
        (created if was_created else kept).append(data["slug"])
    if created:
        transaction.on_commit(role_cache_clear)
    return BuiltinLoadResult(created=created, kept=kept)


def role_set_active(*, roles: Iterable[Role], active: bool) -> int:
    ids = [role.pk for role in roles]
    count = Role.objects.filter(pk__in=ids).update(is_active=active)
    role_cache_clear()
    return count


def role_save(*, role: Role) -> Role:
    role.full_clean()
    role.save()
    role_cache_clear()
    return role


def role_delete(*, roles: Iterable[Role]) -> None:
    Role.objects.filter(pk__in=[role.pk for role in roles]).delete()
    role_cache_clear()


# --- Import (the other half of selectors.role_export) -----------------------------

ROLE_IMPORT_REQUIRED = ("slug", "name", "system_prompt")
_TEXT_FIELDS = frozenset(
    {"slug", "name", "name_zh_hans", "description", "description_zh_hans", "system_prompt", "model"}
)

RoleImportAction = Literal["created", "updated", "unchanged"]


class RoleImportError(ValueError):
    """The import data is wrong; the message names the role and field. Nothing was written."""


@dataclass(frozen=True)
class RoleImportOutcome:
    slug: str
    action: RoleImportAction
    fields: tuple[str, ...] = ()  # the fields an update changes


@dataclass(frozen=True)
class RoleImportResult:
    outcomes: tuple[RoleImportOutcome, ...]  # in the order of the import data
    dry_run: bool

    @property
    def created(self) -> list[str]:
        return [o.slug for o in self.outcomes if o.action == "created"]

    @property
    def updated(self) -> dict[str, tuple[str, ...]]:
        return {o.slug: o.fields for o in self.outcomes if o.action == "updated"}

    @property
    def unchanged(self) -> list[str]:
        return [o.slug for o in self.outcomes if o.action == "unchanged"]


@transaction.atomic
def role_import(*, data: object, dry_run: bool) -> RoleImportResult:
    """Create or update roles by slug from `role_export()`'s shape; never deletes.

    `data` is `{"roles": [...]}` or a bare list of role objects. Keys left out of an
    existing role keep their current values; left out of a new role, the model's
    defaults. Every role is validated (with `full_clean`) before anything is
    written, so a bad role means nothing is written: `RoleImportError`.
    With `dry_run` the result says what would happen and nothing is written.
    """
    entries = _role_import_entries(data)
    slugs = [e["slug"] for e in entries if isinstance(e, dict) and isinstance(e.get("slug"), str)]
    existing = Role.objects.in_bulk(slugs, field_name="slug")
    problems: list[str] = []
    seen: set[str] = set()
    planned: list[tuple[Role, RoleImportOutcome]] = []
    for number, entry in enumerate(entries, start=1):
        try:
            role, outcome = _role_import_one(entry=entry, number=number, existing=existing, seen=seen)
        except RoleImportError as error:
            problems.append(str(error))
            continue
        seen.add(outcome.slug)
        planned.append((role, outcome))
    if problems:
        raise RoleImportError("\n".join(problems))
    result = RoleImportResult(outcomes=tuple(outcome for _, outcome in planned), dry_run=dry_run)
    if dry_run:
        return result
    for role, outcome in planned:
        if outcome.action == "created":
            role.save()
        elif outcome.action == "updated":
            role.save(update_fields=[*outcome.fields, "updated_at"])
    if result.created or result.updated:
        transaction.on_commit(role_cache_clear)
    return result


def _role_import_entries(data: object) -> list[object]:
    if isinstance(data, dict):
        if set(data) != {"roles"}:
            keys = ", ".join(sorted(str(key) for key in data)) or "none"
            raise RoleImportError(
                f'Expected {{"roles": [...]}} or a list of roles; the object has keys: {keys}.'
            )
        data = data["roles"]
    if not isinstance(data, list):
        raise RoleImportError(f"Expected a list of roles, got {_shown(data)}.")
    return data


def _role_import_one(
    *, entry: object, number: int, existing: dict[str, Role], seen: set[str]
) -> tuple[Role, RoleImportOutcome]:
    """The role `entry` describes, with its changes applied but not saved, and what they amount to."""
    if not isinstance(entry, dict):
        raise RoleImportError(f"Role {number}: expected an object, got {_shown(entry)}.")
    label = f"Role {number}"
    if isinstance(entry.get("slug"), str):
        label = f"Role {number} ({_shown(entry['slug'])})"
    elif isinstance(entry.get("name"), str):
        label = f"Role {number} (name {_shown(entry['name'])})"
    problems: list[str] = []
    unknown = sorted(str(key) for key in entry if key not in ROLE_EXPORT_FIELDS)
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)}")
    missing = [key for key in ROLE_IMPORT_REQUIRED if key not in entry]
    if missing:
        problems.append(f"missing required key(s) {', '.join(missing)}")
    values: dict[str, object] = {}
    for field in ROLE_EXPORT_FIELDS:
        if field in entry:
            try:
                values[field] = _role_import_value(field=field, value=entry[field])
            except ValueError as error:
                problems.append(f"{field}: {error}")
    if problems:
        raise RoleImportError(f"{label}: {'; '.join(problems)}.")
    slug = str(values["slug"])
    if slug in seen:
        raise RoleImportError(f"{label}: slug: appears more than once in the import.")
    role = existing.get(slug) or Role()
    before = {field: getattr(role, field) for field in values}
    for field, value in values.items():
        setattr(role, field, value)
    try:
        role.full_clean()
    except ValidationError as error:
        raise RoleImportError(f"{label}: {_role_import_describe(error)}") from None
    if role.pk is None:
        return role, RoleImportOutcome(slug=slug, action="created")
    changed = tuple(field for field in values if getattr(role, field) != before[field])
    return role, RoleImportOutcome(slug=slug, action="updated" if changed else "unchanged", fields=changed)


def _role_import_value(*, field: str, value: object) -> object:
    """`value` as the model field takes it; ValueError says what is wrong with it."""
    if field in _TEXT_FIELDS:
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {_shown(value)}")
        return value
    if field == "is_active":
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {_shown(value)}")
        return value
    if field == "sort_order":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number, got {_shown(value)}")
        return value
    # temperature: a string like "0.70" (as exported) or a JSON number.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f'must be a number or a string like "0.70", got {_shown(value)}')
    try:
        temperature = Decimal(value.strip() if isinstance(value, str) else str(value))
    except InvalidOperation:
        raise ValueError(f"must be a number, got {_shown(value)}") from None
    if not temperature.is_finite() or not 0 <= temperature <= 2:
        raise ValueError(f"must be between 0 and 2, got {_shown(value)}")
    return temperature


def _role_import_describe(error: ValidationError) -> str:
    parts = [
        " ".join(messages) if field == NON_FIELD_ERRORS else f"{field}: {' '.join(messages)}"
        for field, messages in error.message_dict.items()
    ]
    return "; ".join(parts)


def _shown(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."

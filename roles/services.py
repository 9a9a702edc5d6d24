"""Writes to roles. Every change goes through here so the cached active list stays true."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.core.cache import cache
from django.db import transaction

from roles.builtin import BUILTIN_ROLES
from roles.models import Role
from roles.selectors import ACTIVE_ROLES_CACHE_KEY


def role_cache_clear() -> None:
    cache.delete(ACTIVE_ROLES_CACHE_KEY)


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
                "description": data["description"],
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

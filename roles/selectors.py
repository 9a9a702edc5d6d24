"""Reads of roles. The active list is cached in Redis; services.role_cache_clear() drops it."""

from dataclasses import dataclass

from django.core.cache import cache

from roles.models import Role

ACTIVE_ROLES_CACHE_KEY = "roles:active:v1"
ACTIVE_ROLES_CACHE_SECONDS = 3600


@dataclass(frozen=True)
class RoleSummary:
    """What a user may see of a role: never its system prompt."""

    slug: str
    name: str
    description: str


def role_list_active() -> list[RoleSummary]:
    cached: list[RoleSummary] | None = cache.get(ACTIVE_ROLES_CACHE_KEY)
    if cached is not None:
        return cached
    roles = [
        RoleSummary(slug=role.slug, name=role.name, description=role.description)
        for role in Role.objects.filter(is_active=True).only("slug", "name", "description")
    ]
    cache.set(ACTIVE_ROLES_CACHE_KEY, roles, ACTIVE_ROLES_CACHE_SECONDS)
    return roles


def role_get_active(*, slug: str) -> Role | None:
    return Role.objects.filter(slug=slug, is_active=True).first()


def role_get_default() -> Role | None:
    """The role a conversation gets when none is asked for: `assistant`, else the first active."""
    return role_get_active(slug="assistant") or Role.objects.filter(is_active=True).first()


# What an export holds and an import accepts, in this order; timestamps are left out.
ROLE_EXPORT_FIELDS = (
    "slug",
    "name",
    "description",
    "system_prompt",
    "model",
    "temperature",
    "is_active",
    "sort_order",
)


def role_export() -> list[dict[str, object]]:
    """Every role, active or not, in list order, as JSON-ready values.

    The temperature is a string with two decimals ("0.70") so it survives JSON exactly.
    """
    rows = Role.objects.order_by("sort_order", "name").values(*ROLE_EXPORT_FIELDS)
    return [{**row, "temperature": f"{row['temperature']:.2f}"} for row in rows]

"""Reads of roles. The active list is cached in Redis, once per language;
services.role_cache_clear() drops it."""

from dataclasses import dataclass

from django.conf import settings
from django.utils import translation

from chatsite.caches import shared_cache
from roles.models import Role, language_suffix

ACTIVE_ROLES_CACHE_SECONDS = 3600


def active_roles_cache_key(language: str | None) -> str:
    return f"roles:active:v2:{language_suffix(language) or settings.LANGUAGE_CODE}"


def active_roles_cache_keys() -> list[str]:
    """The cached active list's key in every supported language."""
    return sorted({active_roles_cache_key(code) for code, _name in settings.LANGUAGES})


@dataclass(frozen=True)
class RoleSummary:
    """What a user may see of a role, in one language: never its system prompt."""

    slug: str
    name: str
    description: str


def role_display_name(role: Role, language: str | None = None) -> str:
    """The role's name in `language` (default: the active one), else in the default language."""
    return role.name_in(language or translation.get_language())


def role_display_description(role: Role, language: str | None = None) -> str:
    return role.description_in(language or translation.get_language())


def role_list_active(*, language: str | None = None) -> list[RoleSummary]:
    """The roles users may pick, named in `language` (default: the active one, the page's)."""
    language = language or translation.get_language()
    key = active_roles_cache_key(language)
    cached: list[RoleSummary] | None = shared_cache().get(key)
    if cached is not None:
        return cached
    roles = [
        RoleSummary(
            slug=role.slug,
            name=role_display_name(role, language),
            description=role_display_description(role, language),
        )
        for role in Role.objects.filter(is_active=True).only(
            "slug", "name", "name_zh_hans", "description", "description_zh_hans"
        )
    ]
    shared_cache().set(key, roles, ACTIVE_ROLES_CACHE_SECONDS)
    return roles


def role_get_active(*, slug: str) -> Role | None:
    if "\x00" in str(slug):  # no slug holds one, and PostgreSQL refuses to compare text with it
        return None
    return Role.objects.filter(slug=slug, is_active=True).first()


def role_get_default() -> Role | None:
    """The role a conversation gets when none is asked for: `assistant`, else the first active."""
    return role_get_active(slug="assistant") or Role.objects.filter(is_active=True).first()


# What an export holds and an import accepts, in this order; timestamps are left out.
ROLE_EXPORT_FIELDS = (
    "slug",
    "name",
    "name_zh_hans",
    "description",
    "description_zh_hans",
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

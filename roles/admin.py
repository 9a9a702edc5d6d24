from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from roles import services
from roles.models import Role


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "name_zh_hans",
        "slug",
        "is_active",
        "model",
        "temperature",
        "sort_order",
        "updated_at",
    ]
    list_editable = ["sort_order"]
    list_filter = ["is_active"]
    search_fields = ["name", "name_zh_hans", "slug", "description", "description_zh_hans", "system_prompt"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "description", "is_active", "sort_order"]}),
        # One pair per supported language other than the default (settings.LANGUAGES).
        (_("Chinese"), {"fields": ["name_zh_hans", "description_zh_hans"]}),
        (_("Prompt"), {"fields": ["system_prompt"]}),
        (_("Model"), {"fields": ["provider", "model", "model_pinned", "temperature"]}),
        (_("History"), {"fields": ["created_at", "updated_at"]}),
    ]
    actions = ["activate", "deactivate"]

    # Saves and deletes go through the services so the cached role list is dropped.
    def save_model(self, request: HttpRequest, obj: Role, form: Any, change: bool) -> None:
        services.role_save(role=obj)

    def delete_model(self, request: HttpRequest, obj: Role) -> None:
        services.role_delete(roles=[obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Role]) -> None:
        services.role_delete(roles=queryset)

    @admin.action(description=_("Activate selected roles"))
    def activate(self, request: HttpRequest, queryset: QuerySet[Role]) -> None:
        count = services.role_set_active(roles=queryset, active=True)
        message = ngettext("%(count)d role activated.", "%(count)d roles activated.", count)
        self.message_user(request, message % {"count": count}, messages.SUCCESS)

    @admin.action(description=_("Deactivate selected roles"))
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Role]) -> None:
        count = services.role_set_active(roles=queryset, active=False)
        message = ngettext("%(count)d role deactivated.", "%(count)d roles deactivated.", count)
        self.message_user(request, message % {"count": count}, messages.SUCCESS)

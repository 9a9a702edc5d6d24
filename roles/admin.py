from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from roles import services
from roles.models import Role


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_active", "model", "temperature", "sort_order", "updated_at"]
    list_editable = ["sort_order"]
    list_filter = ["is_active"]
    search_fields = ["name", "slug", "description", "system_prompt"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "description", "is_active", "sort_order"]}),
        ("Prompt", {"fields": ["system_prompt"]}),
        ("Model", {"fields": ["model", "temperature"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]
    actions = ["activate", "deactivate"]

    # Saves and deletes go through the services so the cached role list is dropped.
    def save_model(self, request: HttpRequest, obj: Role, form: Any, change: bool) -> None:
        services.role_save(role=obj)

    def delete_model(self, request: HttpRequest, obj: Role) -> None:
        services.role_delete(roles=[obj])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Role]) -> None:
        services.role_delete(roles=queryset)

    @admin.action(description="Activate selected roles")
    def activate(self, request: HttpRequest, queryset: QuerySet[Role]) -> None:
        count = services.role_set_active(roles=queryset, active=True)
        self.message_user(request, f"{count} role(s) activated.", messages.SUCCESS)

    @admin.action(description="Deactivate selected roles")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Role]) -> None:
        count = services.role_set_active(roles=queryset, active=False)
        self.message_user(request, f"{count} role(s) deactivated.", messages.SUCCESS)

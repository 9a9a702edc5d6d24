from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from providers import services
from providers.models import Provider, ProviderModel


class ProviderForm(forms.ModelForm):
    # Write-only: the form never shows the stored key, not even masked.
    api_key = forms.CharField(
        label=_("API key"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Stored encrypted and never shown again. Leave empty to keep the current key."),
    )
    clear_api_key = forms.BooleanField(label=_("Remove the stored key"), required=False)

    class Meta:
        model = Provider
        fields = ["name", "label", "base_url", "enabled", "read_timeout", "sort_order"]

    def save(self, commit: bool = True) -> Provider:
        provider: Provider = super().save(commit=False)
        if self.cleaned_data.get("api_key"):
            provider.api_key = self.cleaned_data["api_key"]
        elif self.cleaned_data.get("clear_api_key"):
            provider.api_key = ""
        if commit:
            provider.save()
        return provider


class ProviderModelInline(admin.TabularInline):
    model = ProviderModel
    extra = 0
    fields = [
        "name",
        "label",
        "enabled",
        "context_window",
        "vision",
        "reasoning",
        "temperature",
        "sort_order",
    ]


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ["label", "name", "base_url", "enabled", "key_stored", "sort_order"]
    list_editable = ["sort_order"]
    list_filter = ["enabled"]
    search_fields = ["name", "label", "base_url"]
    readonly_fields = ["key_stored", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["label", "name", "base_url", "enabled", "sort_order"]}),
        (_("API key"), {"fields": ["key_stored", "api_key", "clear_api_key"]}),
        (_("Timeouts"), {"fields": ["read_timeout"]}),
        (_("History"), {"fields": ["created_at", "updated_at"]}),
    ]
    inlines = [ProviderModelInline]
    actions = ["refresh_models"]

    @admin.display(boolean=True, description=_("key stored"))
    def key_stored(self, obj: Provider) -> bool:
        return obj.has_api_key

    @admin.action(description=_("Refresh models (ask the provider which it has)"))
    def refresh_models(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            try:
                refreshed = services.provider_models_refresh(provider=provider)
            except services.RefreshFailed as exc:
                message = _("%(provider)s: could not list its models (%(reason)s).")
                self.message_user(request, message % {"provider": provider, "reason": exc}, messages.ERROR)
                continue
            message = _("%(provider)s lists %(listed)d models; %(added)d new ones were added: %(names)s")
            self.message_user(
                request,
                message
                % {
                    "provider": provider,
                    "listed": refreshed.listed,
                    "added": len(refreshed.added),
                    "names": ", ".join(refreshed.added[:20]) or "-",
                },
                messages.SUCCESS,
            )

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"base_url": "https://"}

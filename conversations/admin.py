import csv
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, F, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from conversations import services, tokens
from conversations.models import ApiToken, Conversation, Feedback, Message, UserLimit, UserUsage
from conversations.usage import usage_annotations


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("turn", "author", "status", "content", "error", "superseded", "model", "created_at")
    readonly_fields = fields
    ordering = ["created_at", "id"]
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    """Users' conversations, for staff to read: nothing can be added or edited here.

    CHATSITE_ADMIN_CONVERSATIONS=false hides them from every staff member. Deleting stays
    possible (with the delete permission) so that deleting a user in the admin still works.
    """

    list_display = ["__str__", "owner", "role", "message_count", "updated_at"]
    list_filter = ["role", "updated_at"]
    search_fields = ["title", "owner__username"]
    list_select_related = ["owner", "role"]
    fields = (
        "id",
        "owner",
        "role",
        "title",
        "model",
        "temperature",
        "system_prompt",
        "custom_instructions",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    inlines = [MessageInline]
    actions = None

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).annotate(message_total=Count("messages"))

    @admin.display(description=_("messages"), ordering="message_total")
    def message_count(self, obj: Conversation) -> int:
        return int(getattr(obj, "message_total", 0))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(settings.CHATSITE_ADMIN_CONVERSATIONS) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(settings.CHATSITE_ADMIN_CONVERSATIONS) and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Conversation) -> None:
        # Through the service: a reply still being written is stopped too.
        services.conversation_delete(owner=obj.owner, conversation_id=obj.pk)


def _cell(text: str) -> str:
    # A spreadsheet runs a cell that starts like a formula: users wrote these.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


CSV_COLUMNS = ["updated_at", "user", "conversation", "reply_id", "model", "rating", "comment", "reply"]


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    """What users thought of replies: to read, filter and export as CSV; never edited."""

    list_display = ["rating", "comment", "user", "reply_text", "updated_at"]
    list_filter = ["rating", "updated_at"]
    search_fields = ["comment", "reply__conversation__owner__username"]
    list_select_related = ["reply__conversation__owner"]
    fields = ("reply", "rating", "comment", "created_at", "updated_at")
    readonly_fields = fields
    actions = ["export_csv"]

    @admin.display(description=_("user"), ordering="reply__conversation__owner__username")
    def user(self, obj: Feedback) -> str:
        return obj.reply.conversation.owner.get_username()

    @admin.display(description=_("reply"))
    def reply_text(self, obj: Feedback) -> str:
        return obj.reply.content[:80]

    @admin.action(description=_("Export selected feedback as CSV"))
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Feedback]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="chatsite-feedback.csv"'
        writer = csv.writer(response)
        writer.writerow(
            ["updated_at", "user", "conversation", "reply_id", "model", "rating", "comment", "reply"]
        )
        for given in queryset.select_related("reply__conversation__owner"):
            reply = given.reply
            writer.writerow(
                [
                    given.updated_at.isoformat(),
                    reply.conversation.owner.get_username(),
                    reply.conversation_id,
                    reply.pk,
                    reply.model,
                    "up" if given.rating == Feedback.Rating.UP else "down",
                    _cell(given.comment),
                    _cell(reply.content),
                ]
            )
        return response

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    actions = ["revoke"]

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        if obj is None:
            return ("user", "name")
        return ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return ("user", "prefix", "created_at", "last_used_at", "revoked_at")

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        # The secret is made by the service and shown this once; only its hash is kept.
        token, raw = tokens.api_token_create(user=obj.user, name=obj.name)
        obj.pk, obj.prefix, obj.key_hash = token.pk, token.prefix, token.key_hash
        self.message_user(
            request,
            _("New API token (copy it now, it is not shown again): %(token)s") % {"token": raw},
            messages.WARNING,
        )

    @admin.action(description=_("Revoke selected tokens"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            tokens.api_token_revoke(token_id=token.pk)
        count = queryset.count()
        message = ngettext("%(count)d token revoked.", "%(count)d tokens revoked.", count)
        self.message_user(request, message % {"count": count}, messages.SUCCESS)


@admin.register(UserLimit)
class UserLimitAdmin(admin.ModelAdmin):
    list_display = ["user", "messages_per_minute", "concurrent_replies", "daily_tokens"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]


if TYPE_CHECKING:  # django-stubs' helper is a dev requirement
    from django_stubs_ext import StrOrPromise

USAGE_COLUMNS = ["replies", "prompt_tokens", "completion_tokens"]


def _usage_figure(name: str, description: "StrOrPromise") -> Callable[[Any], str]:
    """A column of the usage list: the annotation `name`, sortable."""

    @admin.display(description=description, ordering=name)
    def figure(obj: Any) -> str:
        return str(getattr(obj, name))

    return figure


@admin.register(UserUsage)
class UsageAdmin(admin.ModelAdmin):
    """Replies and tokens per user, today and this month (UTC), to sort and export as CSV."""

    list_display = [
        "username",
        _usage_figure("today_replies", _("replies today")),
        _usage_figure("today_tokens", _("tokens today")),
        _usage_figure("month_replies", _("replies this month")),
        _usage_figure("month_tokens", _("tokens this month")),
    ]
    search_fields = ["username"]
    ordering = ["username"]
    actions = ["export_csv"]
    fields = ("username",)
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[UserUsage]:
        return (
            super()
            .get_queryset(request)
            .annotate(**usage_annotations())
            .annotate(
                today_tokens=F("today_prompt_tokens") + F("today_completion_tokens"),
                month_tokens=F("month_prompt_tokens") + F("month_completion_tokens"),
            )
        )

    @admin.action(description=_("Export the selected users' usage as CSV"))
    def export_csv(self, request: HttpRequest, queryset: QuerySet[UserUsage]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="chatsite-usage.csv"'
        writer = csv.writer(response)
        periods = ("today", "month")
        writer.writerow(["user", *(f"{period}_{column}" for period in periods for column in USAGE_COLUMNS)])
        for user in queryset:
            figures = [getattr(user, f"{period}_{column}") for period in periods for column in USAGE_COLUMNS]
            writer.writerow([_cell(user.get_username()), *figures])
        return response

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # users are deleted in their own admin, with what they own

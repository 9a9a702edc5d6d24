"""Sign-in, sign-up, the settings page and password reset. Thin: each view calls a service."""

from typing import Any

from django.conf import settings as django_settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse_lazy
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST

from accounts import services, throttle
from accounts.forms import AccountDeleteForm, EmailForm, InstructionsForm, PromptForm, SignUpForm
from conversations.errors import ChatError
from conversations.imports import ImportRefused, conversations_import
from conversations.instructions import instructions_get, instructions_set
from conversations.limits import LimitExceeded
from conversations.models import SavedPrompt
from conversations.prompts import prompt_create, prompt_delete, prompt_list
from conversations.usage import usage_summary
from sharing.selectors import share_list


def _client_ip(request: HttpRequest) -> str:
    # Behind a reverse proxy, run daphne with --proxy-headers so this is the client's address.
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # LoginRequiredMiddleware lets no one else in
    return user


class SignInView(auth_views.LoginView):
    """Django's sign-in, with failed attempts limited per client IP and per account."""

    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            throttle.signin_attempt(ip=_client_ip(request), username=request.POST.get("username", ""))
        except LimitExceeded as exc:
            response = self.render_to_response(self.get_context_data(throttled=exc.message))
            response.status_code = 429
            response["Retry-After"] = str(exc.retry_after)
            return response
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        throttle.signin_succeeded(ip=_client_ip(self.request), username=form.get_user().get_username())
        return super().form_valid(form)


@login_not_required
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if not django_settings.CHATSITE_SIGNUP_ENABLED:
        raise Http404("Sign-up is turned off.")
    if request.user.is_authenticated:
        return redirect("chat:home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("chat:home")
    return render(request, "registration/signup.html", {"form": form})


def _settings_page(
    request: HttpRequest,
    *,
    email_form: EmailForm | None = None,
    instructions_form: InstructionsForm | None = None,
    prompt_form: PromptForm | None = None,
    delete_form: AccountDeleteForm | None = None,
    import_error: str = "",
    status: int = 200,
) -> HttpResponse:
    user = _user(request)
    context = {
        "email_form": email_form or EmailForm(instance=user),
        "prompt_form": prompt_form or PromptForm(auto_id="prompt_%s"),
        "prompts": list(prompt_list(owner=user)),
        "shares": list(share_list(owner=user)),
        "import_error": import_error,
        "instructions_form": instructions_form
        or InstructionsForm(auto_id="instructions_%s", initial={"text": instructions_get(user_id=user.pk)}),
        "delete_form": delete_form or AccountDeleteForm(user),
        "notices": list(messages.get_messages(request)),
        "usage": usage_summary(user_id=user.pk),
    }
    return render(request, "accounts/settings.html", context, status=status)


@require_http_methods(["GET", "POST"])
def account_settings(request: HttpRequest) -> HttpResponse:
    """The settings page; a POST saves the email address (the one field it edits itself)."""
    if request.method != "POST":
        return _settings_page(request)
    form = EmailForm(request.POST, instance=_user(request))
    if not form.is_valid():
        return _settings_page(request, email_form=form, status=400)
    form.save()
    messages.success(request, _("Your email address was saved."))
    return redirect("account_settings")


@require_POST
def instructions_save(request: HttpRequest) -> HttpResponse:
    form = InstructionsForm(request.POST, auto_id="instructions_%s")
    if not form.is_valid():
        return _settings_page(request, instructions_form=form, status=400)
    try:
        instructions_set(user=_user(request), text=form.cleaned_data["text"])
    except ChatError as exc:
        form.add_error("text", exc.message)
        return _settings_page(request, instructions_form=form, status=400)
    messages.success(request, _("Your custom instructions were saved. New conversations follow them."))
    return redirect("account_settings")


@require_POST
def prompt_add(request: HttpRequest) -> HttpResponse:
    form = PromptForm(request.POST, auto_id="prompt_%s")
    if not form.is_valid():
        return _settings_page(request, prompt_form=form, status=400)
    try:
        prompt_create(owner=_user(request), title=form.cleaned_data["title"], text=form.cleaned_data["text"])
    except ChatError as exc:
        form.add_error(None, exc.message)
        return _settings_page(request, prompt_form=form, status=400)
    messages.success(request, _("The prompt was saved."))
    return redirect("account_settings")


@require_POST
def prompt_remove(request: HttpRequest, prompt_id: int) -> HttpResponse:
    try:
        prompt_delete(owner=_user(request), prompt_id=prompt_id)
    except SavedPrompt.DoesNotExist:
        raise Http404 from None
    messages.success(request, _("The prompt was deleted."))
    return redirect("account_settings")


@require_POST
def conversations_import_upload(request: HttpRequest) -> HttpResponse:
    """Import the uploaded export (Chatsite's or ChatGPT's) into the caller's conversations."""
    upload = request.FILES.get("file")
    if upload is None:
        return _settings_page(request, import_error=_("Choose a file to import."), status=400)
    if upload.size is None or upload.size > django_settings.CHAT_IMPORT_MAX_BYTES:
        limit = filesizeformat(django_settings.CHAT_IMPORT_MAX_BYTES)
        too_large = _("A file to import can be at most %(size)s.") % {"size": limit}
        return _settings_page(request, import_error=too_large, status=400)
    try:
        result = conversations_import(owner=_user(request), data=upload.read())
    except ImportRefused as exc:
        return _settings_page(request, import_error=exc.message, status=400)
    imported = ngettext(
        "%(count)s conversation was imported.", "%(count)s conversations were imported.", result.created
    ) % {"count": result.created}
    if result.skipped:
        imported += " " + ngettext(
            "%(count)s was there already.", "%(count)s were there already.", result.skipped
        ) % {"count": result.skipped}
    messages.success(request, imported)
    return redirect("account_settings")


@require_POST
def sessions_end_others(request: HttpRequest) -> HttpResponse:
    count = services.user_sessions_end_others(user=_user(request), keep=request.session.session_key)
    messages.success(request, _("Signed out of %(count)s other session(s).") % {"count": count})
    return redirect("account_settings")


@require_POST
def account_delete(request: HttpRequest) -> HttpResponse:
    form = AccountDeleteForm(_user(request), request.POST)
    if not form.is_valid():
        return _settings_page(request, delete_form=form, status=400)
    services.user_delete(user=_user(request))
    logout(request)
    return redirect("login")


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change (the caller stays signed in; their other sessions end),
    back to the settings page."""

    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("account_settings")

    def form_valid(self, form: PasswordChangeForm) -> HttpResponse:
        response = super().form_valid(form)
        messages.success(self.request, _("Your password was changed."))
        return response


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/password_reset_email.txt"
    subject_template_name = "accounts/password_reset_subject.txt"

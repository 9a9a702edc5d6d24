from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.utils.translation import gettext_lazy as _

from conversations.models import INSTRUCTIONS_MAX_CHARS, PROMPT_TEXT_MAX_CHARS, PROMPT_TITLE_MAX_CHARS


class SignUpForm(UserCreationForm):
    """Django's sign-up, with an optional email address for password resets."""

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].help_text = _("Optional: needed to reset a forgotten password.")

    def clean_email(self) -> str:
        return email_clean(self.cleaned_data.get("email", ""), user=None)


class EmailForm(forms.ModelForm):
    class Meta:
        model = User
        fields = ("email",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].help_text = _("Where a password reset link is sent. Leave empty for none.")

    def clean_email(self) -> str:
        return email_clean(self.cleaned_data.get("email", ""), user=self.instance)


def email_clean(email: str, *, user: User | None) -> str:
    """An address belongs to one account at most: a reset link goes to one person."""
    email = User.objects.normalize_email(email or "").strip()
    if email:
        others = User.objects.filter(email__iexact=email)
        if user is not None and user.pk:
            others = others.exclude(pk=user.pk)
        if others.exists():
            raise forms.ValidationError(_("Another account already uses this email address."))
    return email


class AccountDeleteForm(forms.Form):
    password = forms.CharField(
        label=_("Your password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def __init__(self, user: User, *args: Any, **kwargs: Any) -> None:
        self.user = user
        super().__init__(*args, **kwargs)

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError(_("That is not your password."))
        return password


class InstructionsForm(forms.Form):
    text = forms.CharField(
        label=_("Custom instructions"),
        required=False,
        max_length=INSTRUCTIONS_MAX_CHARS,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text=_(
            "What should every new conversation know about you, and how should it answer? "
            "They apply to conversations started from now on."
        ),
    )

    def clean(self) -> dict[str, Any]:
        # Sent empty, the instructions are removed; not sent at all (a body that could not
        # be read), nothing changes.
        if "text" not in self.data:
            raise forms.ValidationError(_("The form arrived incomplete: nothing was saved."))
        return super().clean() or {}


class PromptForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=PROMPT_TITLE_MAX_CHARS)
    text = forms.CharField(
        label=_("Prompt"),
        max_length=PROMPT_TEXT_MAX_CHARS,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("In the message box, type / and the start of its title to insert it."),
    )

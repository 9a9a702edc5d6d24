"""The Jinja2 environment for the site's own pages and fragments."""

from collections.abc import MutableMapping
from typing import Any

from django.conf import settings
from django.templatetags.static import static
from django.urls import reverse
from django.utils import translation
from django.utils.formats import date_format
from django.utils.timezone import localtime
from jinja2 import Environment

from conversations.models import FOLDER_NAME_MAX_CHARS, INSTRUCTIONS_MAX_CHARS
from conversations.reasoning import answer_started, reasoning_split
from conversations.rendering import render_markdown
from providers.local_model_state import local_model_state, local_model_state_note


def url(name: str, *args: Any, **kwargs: Any) -> str:
    return reverse(name, args=args or None, kwargs=kwargs or None)


def signup_enabled() -> bool:
    return bool(settings.CHATSITE_SIGNUP_ENABLED)


def local_model_in_use() -> bool:
    return bool(settings.CHATSITE_LOCAL_MODEL_IN_USE)


def max_chars() -> int:
    return int(settings.CHAT_MAX_MESSAGE_CHARS)


def max_images() -> int:
    return int(settings.CHAT_IMAGES_PER_MESSAGE)


class _Environment(Environment):
    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as one flat dict, not Jinja's ChainMap over the environment's.
        Every render copies them into its context, and through a ChainMap that was a
        quarter of rendering a streamed frame (9 of 35 us; a busy process renders ~1,000 a
        second). The environment's globals are all set below, before any template loads."""
        return {**self.globals, **(d or {})}


def environment(**options: Any) -> Environment:
    env = _Environment(extensions=["jinja2.ext.i18n"], **options)
    env.install_gettext_callables(  # type: ignore[attr-defined]
        translation.gettext, translation.ngettext, newstyle=True
    )
    env.globals.update(
        {
            "static": static,
            "url": url,
            "get_language": translation.get_language,
            "signup_enabled": signup_enabled,
            "max_chars": max_chars,
            "max_images": max_images,
            "folder_name_max": FOLDER_NAME_MAX_CHARS,
            "note_max": INSTRUCTIONS_MAX_CHARS,
            "local_model_in_use": local_model_in_use,
            "local_model_state": local_model_state,
            "local_model_state_note": local_model_state_note,
            "reasoning_split": reasoning_split,
            "answer_started": answer_started,
        }
    )
    env.filters["markdown"] = render_markdown
    env.filters["localtime"] = localtime
    env.filters["date"] = date_format
    return env

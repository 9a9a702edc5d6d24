"""Writes to a user's account: its sessions, and the account itself with all its data."""

from importlib import import_module

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone

from conversations import services as chat_services


def _session_store_class() -> type:
    return import_module(settings.SESSION_ENGINE).SessionStore


def user_session_keys(*, user: User) -> list[str]:
    """The keys of the user's sessions that have not expired.

    Sessions are signed blobs keyed by nothing but their key, so each live one is read:
    fine for a self-hosted site's few thousand sessions.
    """
    store = _session_store_class()()
    keys: list[str] = []
    live = Session.objects.filter(expire_date__gt=timezone.now()).only("session_key", "session_data")
    for session in live.iterator():
        if str(store.decode(session.session_data).get("_auth_user_id")) == str(user.pk):
            keys.append(session.session_key)
    return keys


def user_sessions_end_others(*, user: User, keep: str | None) -> int:
    """End every session of the user but `keep` (the caller's own): each of them is signed
    out on its next request. Returns how many were ended."""
    store_class = _session_store_class()
    ended = 0
    for key in user_session_keys(user=user):
        if key != keep:
            store_class(session_key=key).delete()  # cached_db: the cache and the row
            ended += 1
    return ended


def user_delete(*, user: User) -> None:
    """Delete the account and everything of it: its conversations (their replies still being
    written are stopped), API tokens, limits and sessions."""
    with transaction.atomic():
        for conversation_id in list(user.conversations.values_list("pk", flat=True)):
            chat_services.conversation_delete(owner=user, conversation_id=conversation_id)
        user_sessions_end_others(user=user, keep=None)
        user.delete()  # API tokens and limits go with it (on_delete=CASCADE)

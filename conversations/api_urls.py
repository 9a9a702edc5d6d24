"""The demo's API paths, kept exactly (no trailing slashes)."""

from django.urls import path, re_path

from conversations import api, search_api

urlpatterns = [
    path("chat/start", api.chat_start, name="api-chat-start"),
    path("chat/stream", api.chat_stream, name="api-chat-stream"),
    path("chat/history", api.chat_history, name="api-chat-history"),
    path("chat/sessions", api.chat_sessions, name="api-chat-sessions"),
    path("chat/search", search_api.chat_search, name="api-chat-search"),
    path("chat/session/<str:session_id>", api.chat_session, name="api-chat-session"),
    path("roles", api.roles, name="api-roles"),
    path("providers", api.providers, name="api-providers"),
    # Anything else under chat/ answers in JSON too, never with an HTML page.
    re_path(r"^chat/", api.not_found),
]

"""Every unsafe HTTP route refuses a cookie-authenticated request that carries no CSRF token."""

from urllib.parse import urlencode

import pytest
from django.test import Client

from conversations.models import Conversation, Message
from conversations.services import conversation_create
from tests.security.routes import METHODS, NOT_FOUND_ROUTES, UNSAFE_METHODS, http_routes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fast_password_hashing")]

UNSAFE = [
    (route, method)
    for route in http_routes()
    if route.name not in NOT_FOUND_ROUTES
    for method in sorted(METHODS[route.name] & UNSAFE_METHODS)
]

# What each unsafe route answers once past the CSRF check, with the harmless data below:
# the view ran (a redirect after the action, a created or deleted conversation, or the
# stream's own validation of the empty message), which no CSRF failure or crash looks like.
# A new unsafe route fails here until its real success status is declared.
PASSED_CSRF: dict[tuple[str, str], int] = {
    ("login", "POST"): 302,  # already signed in: sent on to the chat page
    ("login", "PUT"): 302,
    ("logout", "POST"): 302,
    ("signup", "POST"): 302,
    ("api-chat-start", "POST"): 201,
    ("api-chat-stream", "POST"): 400,  # {"error": {"code": "empty_message"}}: the view read the body
    ("api-chat-session", "DELETE"): 200,
    ("chat:rename", "POST"): 302,
    ("chat:delete", "DELETE"): 302,
    ("chat:delete", "POST"): 302,
    ("chat:pin", "POST"): 400,  # no `pinned`: nothing is changed
    ("chat:archive", "POST"): 400,
    ("chat:folder_create", "POST"): 400,  # no name: no folder is made
    ("chat:folder_rename", "POST"): 404,  # no such folder of the caller's: past the check
    ("chat:folder_delete", "POST"): 400,  # not said what becomes of its conversations: nothing deleted
    ("chat:move", "POST"): 400,  # not said where to: nothing is moved
    ("chat:bulk", "POST"): 400,  # no action: nothing is changed
    ("chat:note", "POST"): 400,  # no note: nothing is changed
    ("chat:feedback", "POST"): 200,  # no rating: none is given, and the controls come back
    ("chat:attachment_upload", "POST"): 400,  # {"error": {"code": "missing_file"}}: past the check
    ("chat:attachment", "DELETE"): 404,  # no such unsent image of the caller's: past the check
    ("sharing:manage", "POST"): 400,  # no `share`: nothing is shared
    ("sharing:remove", "POST"): 404,  # no such link of the caller's: past the check
    ("sharing:continue", "POST"): 404,  # no link has this token: past the check
    # accounts/: a form the harmless data leaves invalid is shown again (200), or refused
    # as a bad request (400); a valid one redirects.
    ("account_settings", "POST"): 302,
    ("instructions_save", "POST"): 400,  # no `text`: nothing is changed
    ("prompt_add", "POST"): 400,  # no title: nothing is saved
    ("prompt_remove", "POST"): 404,  # no such prompt of the caller's: past the check
    ("conversations_import", "POST"): 400,  # no file: nothing is imported
    ("sessions_end_others", "POST"): 302,
    ("account_delete", "POST"): 400,  # no password confirmation: nothing is deleted
    ("password_change", "POST"): 200,
    ("password_change", "PUT"): 200,
    ("password_reset", "POST"): 200,
    ("password_reset", "PUT"): 200,
    ("password_reset_confirm", "POST"): 200,
    ("password_reset_confirm", "PUT"): 200,
}


@pytest.fixture
def conversation(alice, builtin_roles) -> Conversation:
    conversation = conversation_create(owner=alice, role_slug="teacher", title="Kept")
    Message.objects.create(conversation=conversation, author="user", content="Still here")
    Message.objects.create(conversation=conversation, author="assistant", content="Answered")
    return conversation


def url_for(route, conversation: Conversation) -> str:
    """The route's URL naming alice's own objects: her conversation, or her reply where the
    route takes an integer id."""
    reply = conversation.messages.get(author="assistant")
    values = {name: reply.pk if f"<int:{name}>" in route.route else conversation.pk for name in route.kwargs}
    return route.url_with(values, suffix=str(conversation.pk))


@pytest.mark.parametrize(("route", "method"), UNSAFE, ids=lambda v: str(v))
def test_an_unsafe_request_without_a_csrf_token_is_refused(route, method, alice, conversation):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/")  # the browser holds the CSRF cookie, as a victim's would
    assert "csrftoken" in client.cookies
    pk = str(conversation.pk)
    data = {"session_id": pk, "message": "forged", "title": "Forged", "role": "teacher"}

    response = client.generic(
        method,
        url_for(route, conversation),
        urlencode(data),
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 403
    conversation.refresh_from_db()
    assert conversation.title == "Kept"
    assert Conversation.objects.count() == 1
    assert Message.objects.count() == 2


@pytest.mark.parametrize(("route", "method"), UNSAFE, ids=lambda v: str(v))
def test_the_same_request_with_the_csrf_token_gets_past_the_check(route, method, alice, conversation):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/")
    pk = str(conversation.pk)
    data = {"session_id": pk, "message": "", "title": "Renamed", "role": "teacher"}  # no reply is started

    response = client.generic(
        method,
        url_for(route, conversation),
        urlencode(data),
        content_type="application/x-www-form-urlencoded",
        headers={"X-CSRFToken": client.cookies["csrftoken"].value},
    )

    assert response.status_code == PASSED_CSRF[(route.name, method)], response.content[:300]
    if route.name == "api-chat-stream":
        assert response.json()["error"]["code"] == "empty_message"
    if route.name == "chat:attachment_upload":
        assert response.json()["error"]["code"] == "missing_file"
    assert b"CSRF verification failed" not in response.content

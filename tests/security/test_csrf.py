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


@pytest.fixture
def conversation(alice, builtin_roles) -> Conversation:
    conversation = conversation_create(owner=alice, role_slug="teacher", title="Kept")
    Message.objects.create(conversation=conversation, author="user", content="Still here")
    return conversation


@pytest.mark.parametrize(("route", "method"), UNSAFE, ids=lambda v: str(v))
def test_an_unsafe_request_without_a_csrf_token_is_refused(route, method, alice, conversation):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/")  # the browser holds the CSRF cookie, as a victim's would
    assert "csrftoken" in client.cookies
    pk = str(conversation.pk)
    data = {"session_id": pk, "message": "forged", "title": "Forged", "role": "teacher"}

    response = client.generic(
        method, route.url(pk), urlencode(data), content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 403
    conversation.refresh_from_db()
    assert conversation.title == "Kept"
    assert Conversation.objects.count() == 1
    assert Message.objects.count() == 1


@pytest.mark.parametrize(("route", "method"), UNSAFE, ids=lambda v: str(v))
def test_the_same_request_with_the_csrf_token_gets_past_the_check(route, method, alice, conversation):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/")
    pk = str(conversation.pk)
    data = {"session_id": pk, "message": "", "title": "Renamed", "role": "teacher"}  # no reply is started

    response = client.generic(
        method,
        route.url(pk),
        urlencode(data),
        content_type="application/x-www-form-urlencoded",
        headers={"X-CSRFToken": client.cookies["csrftoken"].value},
    )

    assert response.status_code != 403

"""Sign-in throttling: failed sign-ins per client IP and per account."""

import pytest
from django.test import Client
from django_redis import get_redis_connection

from accounts import throttle
from conversations import limits
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_the_sign_in_throttle_lives_in_accounts_not_in_the_chat_limits():
    assert callable(throttle.signin_attempt) and callable(throttle.signin_succeeded)
    assert not hasattr(limits, "signin_attempt") and not hasattr(limits, "_SIGNIN_ATTEMPT")


def test_sign_in_is_refused_after_too_many_attempts_for_an_account(alice, settings):
    settings.SIGNIN_LIMIT_PER_ACCOUNT = 3
    client = Client()
    for _ in range(3):
        client.post("/accounts/login/", {"username": "alice", "password": "wrong"})

    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 429
    assert "Too many sign-in attempts" in response.content.decode()
    assert int(response["Retry-After"]) > 0
    assert "_auth_user_id" not in client.session


def test_sign_in_failures_are_limited_per_ip_across_accounts(alice, settings):
    settings.SIGNIN_LIMIT_PER_IP = 2
    client = Client()
    for name in ["x", "y"]:
        client.post("/accounts/login/", {"username": name, "password": "wrong"})

    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 429


def test_a_correct_sign_in_under_the_limit_works(alice, settings):
    settings.SIGNIN_LIMIT_PER_ACCOUNT = 3
    client = Client()
    client.post("/accounts/login/", {"username": "alice", "password": "wrong"})

    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 302


def test_successful_sign_ins_do_not_count_against_the_ip(alice, settings):
    settings.SIGNIN_LIMIT_PER_IP = 3
    for _ in range(6):  # an office behind one address, everyone signing in
        client = Client()
        response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
        assert response.status_code == 302

    for name in ["x", "y", "z"]:  # failures still count
        Client().post("/accounts/login/", {"username": name, "password": "wrong"})
    assert Client().post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code == 429


def test_a_sign_in_that_outlasts_its_ips_window_leaves_no_count_behind(alice):
    throttle.signin_attempt(ip="203.0.113.9", username="alice")
    get_redis_connection("default").delete("chatsite:signin:ip:203.0.113.9")  # the window ended

    throttle.signin_succeeded(ip="203.0.113.9", username="alice")

    # A -1 there would never expire: one failure more allowed in every window to come.
    assert get_redis_connection("default").exists("chatsite:signin:ip:203.0.113.9") == 0

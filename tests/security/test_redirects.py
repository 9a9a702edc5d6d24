"""No page sends a user on to another site, whatever `next` says."""

import pytest

from tests.conftest import PASSWORD

pytestmark = pytest.mark.usefixtures("fast_password_hashing")

ELSEWHERE = [
    "https://evil.example/",
    "//evil.example/",
    "/\\evil.example/",
    "https:evil.example",
    "javascript:alert(1)",
    " https://evil.example/",
]


@pytest.mark.parametrize("next_url", ELSEWHERE)
def test_signing_in_never_redirects_to_another_site(client, alice, next_url):
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD, "next": next_url})

    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.parametrize("next_url", ELSEWHERE)
def test_switching_language_never_redirects_to_another_site(client, alice, next_url):
    client.force_login(alice)

    response = client.post("/i18n/setlang/", {"language": "en", "next": next_url})

    assert response.status_code == 302
    assert response["Location"] == "/"

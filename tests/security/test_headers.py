"""Security headers, the htmx configuration, and production settings (checked in real processes)."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from tests.browser.conftest import open_page
from tests.conftest import PASSWORD

pytestmark = pytest.mark.usefixtures("fast_password_hashing")

BASE_DIR = Path(__file__).resolve().parent.parent.parent
PAGES = ["/accounts/login/", "/accounts/signup/", "/", "/admin/login/"]
# Referrer policies that never send a conversation's address to another site.
PRIVATE_REFERRER_POLICIES = {"no-referrer", "same-origin", "strict-origin", "strict-origin-when-cross-origin"}


@pytest.fixture
def signed_in(client, alice):
    client.force_login(alice)
    return client


def csp_of(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {name: values for name, *values in directives}


# --- Headers on every page ------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_scripts_may_come_only_from_the_site_itself(signed_in, path):
    script_src = csp_of(signed_in.get(path))["script-src"]

    assert "'self'" in script_src
    assert [v for v in script_src if v != "'self'" and not v.startswith("'nonce-")] == []


@pytest.mark.parametrize("path", PAGES)
def test_the_csp_allows_no_inline_code_and_no_eval(signed_in, path):
    header = signed_in.get(path).headers["Content-Security-Policy"]

    assert re.findall(r"'unsafe-[a-z-]+'|'wasm-unsafe-eval'", header) == []


@pytest.mark.parametrize(
    ("directive", "value"), [("object-src", "'none'"), ("base-uri", "'none'"), ("frame-ancestors", "'none'")]
)
def test_the_csp_forbids_plugins_base_tags_and_framing(signed_in, directive, value):
    assert csp_of(signed_in.get("/"))[directive] == [value]


@pytest.mark.parametrize("path", PAGES)
def test_pages_cannot_be_framed(signed_in, path):
    assert signed_in.get(path).headers["X-Frame-Options"] == "DENY"


@pytest.mark.django_db(transaction=True)  # the API's views leave the test's transaction
@pytest.mark.parametrize("path", [*PAGES, "/roles", "/chat/sessions"])
def test_content_types_are_not_sniffed(signed_in, path):
    assert signed_in.get(path).headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", PAGES)
def test_no_conversation_address_is_sent_to_other_sites(signed_in, path):
    assert signed_in.get(path).headers["Referrer-Policy"] in PRIVATE_REFERRER_POLICIES


@pytest.mark.parametrize("path", PAGES)
def test_pages_do_not_share_a_browsing_context_group_with_other_sites(signed_in, path):
    assert signed_in.get(path).headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_the_admin_login_page_renders_under_the_csp(client, db):
    response = client.get("/admin/login/")

    assert response.status_code == 200
    assert "Content-Security-Policy" in response.headers


# --- htmx ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"), [("allowEval", False), ("allowScriptTags", False), ("selfRequestsOnly", True)]
)
def test_htmx_is_configured_safely(signed_in, option, value):
    page = signed_in.get("/").content.decode()
    meta = re.search(r"<meta name=\"htmx-config\" content='([^']*)'>", page)

    assert meta is not None
    assert json.loads(meta.group(1))[option] is value


# --- Cookies ------------------------------------------------------------------------------------------


@pytest.fixture
def session_cookie(client, alice):
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    return client.cookies[django_settings.SESSION_COOKIE_NAME]


def test_the_session_cookie_is_hidden_from_scripts(session_cookie):
    assert session_cookie["httponly"] is True


def test_the_session_cookie_is_not_sent_with_cross_site_subrequests(session_cookie):
    assert session_cookie["samesite"] == "Lax"


# --- Production settings, in their own processes -------------------------------------------------------


def production_env(**overrides: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(48),  # 64 characters
        "ALLOWED_HOSTS": "chat.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
        "REDIS_URL": os.environ["REDIS_URL"],
    }
    env.update(overrides)
    return env


def run_python(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_deployment_check_passes_with_production_settings():
    result = run_python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("secret_key", ["", "too-short-a-secret-key"], ids=["missing", "short"])
def test_production_refuses_to_start_without_a_strong_secret_key(secret_key):
    result = run_python(["-c", "import django; django.setup()"], production_env(SECRET_KEY=secret_key))

    assert result.returncode != 0
    assert "DEBUG=false needs a strong SECRET_KEY" in result.stderr


PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings
names = ["SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE",
         "CSRF_COOKIE_SAMESITE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS"]
print(json.dumps({name: getattr(settings, name) for name in names}))
"""


@pytest.fixture(scope="module")
def production_settings() -> dict[str, object]:
    result = run_python(["-c", PRINT_SETTINGS], production_env())
    assert result.returncode == 0, result.stderr
    settings: dict[str, object] = json.loads(result.stdout)
    return settings


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SESSION_COOKIE_SECURE", True),
        ("CSRF_COOKIE_SECURE", True),
        ("SESSION_COOKIE_HTTPONLY", True),
        ("SESSION_COOKIE_SAMESITE", "Lax"),
        ("CSRF_COOKIE_SAMESITE", "Lax"),
        ("SECURE_SSL_REDIRECT", True),
    ],
)
def test_production_cookies_and_transport_are_hardened(production_settings, name, value):
    assert production_settings[name] == value


def test_production_asks_browsers_for_https_for_at_least_a_year(production_settings):
    assert production_settings["SECURE_HSTS_SECONDS"] >= 31_536_000


# --- In a real browser ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_admin_login_page_runs_in_a_browser_without_csp_violations(live_app, browser, csp_violations):
    page = open_page(browser, csp_violations)

    page.goto(live_app.url + "admin/login/")
    page.wait_for_load_state("load")

    assert page.locator("#id_username").is_visible()
    assert csp_violations == []

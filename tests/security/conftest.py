import pytest

# The browser tests' fixtures, for the security tests that drive a real page.
from tests.browser.conftest import browser, csp_violations  # noqa: F401


@pytest.fixture
def fast_password_hashing(settings) -> None:
    """For tests whose users never type a password: a slow hash only slows the sweep.

    Not for browser tests: the server process must be able to check the hash.
    """
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

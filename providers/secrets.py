"""Provider API keys at rest: Fernet-encrypted with keys derived from SECRET_KEY.

Rotation follows Django's own: set a new SECRET_KEY, move the old one to
SECRET_KEY_FALLBACKS, and keys encrypted under the old one still decrypt; run
`manage.py provider_keys_rotate` to re-encrypt them all under the new one, then drop
the fallback. PROVIDER_KEYS_SECRET, when set, is used instead of SECRET_KEY (so the
two can be rotated apart).
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class KeyUnreadable(Exception):
    """A stored key was encrypted under a secret that is no longer configured."""


def _fernet_key(secret: str) -> bytes:
    # A fixed, purpose-bound derivation: the same secret gives a different key here
    # than anywhere else Django uses it.
    digest = hashlib.sha256(f"chatsite.providers.api_key:{secret}".encode()).digest()
    return base64.urlsafe_b64encode(digest)


def _fernet() -> MultiFernet:
    if settings.PROVIDER_KEYS_SECRET:
        secrets = [settings.PROVIDER_KEYS_SECRET, *settings.PROVIDER_KEYS_SECRET_FALLBACKS]
    else:
        secrets = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return MultiFernet([Fernet(_fernet_key(secret)) for secret in secrets])


def secret_encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode() if plain else ""


def secret_decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise KeyUnreadable("the key was encrypted under a secret no longer configured") from None


def secret_rotate(token: str) -> str:
    """The same secret, encrypted under the current key."""
    return _fernet().rotate(token.encode()).decode() if token else ""

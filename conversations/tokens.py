"""API tokens: created and revoked by their owner or an admin, checked on every API request."""

import hashlib
import secrets

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from conversations.models import ApiToken
from conversations.owners import User, owner_id

TOKEN_PREFIX = "cs_"
# last_used_at is written at most this often per token: not one write per request.
TOKEN_TOUCH_SECONDS = 60


def _token_hash(raw: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(raw.encode()).hexdigest()


def api_token_create(*, user: User, name: str = "") -> tuple[ApiToken, str]:
    """Create a token; returns it with the raw secret, which is never stored and shown once."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user_id=owner_id(user), name=name.strip()[:100], prefix=raw[:10], key_hash=_token_hash(raw)
    )
    return token, raw


def api_token_revoke(*, token_id: int, user: User | None = None) -> ApiToken:
    """Revoke a token (of `user`, when given). Raises ApiToken.DoesNotExist."""
    tokens = ApiToken.objects.filter(pk=token_id)
    if user is not None:
        tokens = tokens.filter(user_id=owner_id(user))
    token = tokens.get()
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_authenticate(*, raw: str) -> AbstractBaseUser | None:
    """The active user a raw bearer token belongs to, or None."""
    if not raw.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=_token_hash(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > TOKEN_TOUCH_SECONDS:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user

"""Who may own data: the check every write that names an owner goes through."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied

User = AbstractBaseUser | AnonymousUser


def owner_id(owner: User) -> int:
    """The owner's primary key. Raises PermissionDenied for anyone signed out."""
    # Defence in depth: callers authenticate, but nothing anonymous may own anything.
    if not owner.is_authenticated or owner.pk is None:
        raise PermissionDenied("Sign in first.")
    return int(owner.pk)

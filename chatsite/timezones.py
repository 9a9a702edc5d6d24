"""Each request in the browser's time zone, so that "Today" in the sidebar is the user's today.

chat.js keeps the browser's IANA zone name in the `tz` cookie; a missing or unknown name
leaves the server's TIME_ZONE. Both sync and async: under daphne a sync-only middleware
would move every request, the API's streams included, onto a thread.
"""

from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone

COOKIE = "tz"
MAX_NAME = 64  # the longest IANA name is about 30 characters


@lru_cache(maxsize=512)
def zone_named(name: str) -> ZoneInfo | None:
    if not name or len(name) > MAX_NAME:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # unknown, or not a zone name at all ("../x")
        return None


def _in_zone(request: HttpRequest) -> Any:
    zone = zone_named(request.COOKIES.get(COOKIE, ""))
    return timezone.override(zone) if zone is not None else nullcontext()


class TimezoneMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self._acall(request)
        with _in_zone(request):
            return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        with _in_zone(request):
            return await self.get_response(request)

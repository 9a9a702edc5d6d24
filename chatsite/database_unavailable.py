"""A database that is locked past its wait, or down, answers 503 with Retry-After: not a 500.

SQLite gives up on a write after its busy timeout ("database is locked") while another
process holds the write lock for that long; PostgreSQL refuses connections while it
restarts. Neither is a fault of the request, and both pass: the client is told to try
again, in the API's JSON error shape for the API, as text for a page or an htmx request.
A query the database refuses as wrong (an integrity, data or programming error) is a
bug, and stays Django's 500: the suite's fuzzers look for those, on SQLite and PostgreSQL.
"""

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from conversations.api_base import error_response
from conversations.errors import database_busy_message
from conversations.metrics import DATABASE_ERRORS

# The API's routes are named so (conversations.api_urls).
API_ROUTE_PREFIX = "api-"

Handler = Callable[[HttpRequest], HttpResponseBase] | Callable[[HttpRequest], Awaitable[HttpResponseBase]]


class DatabaseUnavailableMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        # Only its process_exception() matters; requests pass through untouched.
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        DATABASE_ERRORS.labels("request").inc()
        response = _answer(request, 503, "unavailable", database_busy_message())
        response["Retry-After"] = str(settings.CHAT_RETRY_AFTER_SECONDS)
        return response


def _answer(request: HttpRequest, status: int, code: str, text: str) -> HttpResponseBase:
    """The API's JSON error shape for the API, text for a page or an htmx request."""
    match = request.resolver_match
    if match is not None and (match.url_name or "").startswith(API_ROUTE_PREFIX):
        return error_response(status, code, text)
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")

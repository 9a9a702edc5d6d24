"""Django's HTTP handling for daphne, with Django's own middleware run on the event loop.

Under an async handler, Django runs every hook of a sync middleware (process_request,
process_view, process_response) through `sync_to_async(thread_sensitive=True)`, and
each request has its own ThreadSensitiveContext, so the first of those hops starts a
thread for the request. With the eleven middleware in MIDDLEWARE that was about twenty
hops a request; py-spy, 200 replies starting at once through the API, found the hops
and the threads a tenth of a worker's CPU.

Their hooks read headers and cookies, set headers and cookies, pick the language and
put lazy session and user objects on the request: no I/O, so here they run inline.
What can do I/O still goes to a thread, as Django would send it: saving a session that
changed, storing messages, a CSRF check that may parse a form body, and the sign-in
check of a page that needs one (it loads the session and the user).

MIDDLEWARE keeps naming Django's classes (`check --deploy` looks for them by name);
ASGIHandler puts the subclasses below in their place when it loads them. The test
client and WSGI keep Django's own, in sync mode.
"""

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import closing
from typing import Any, cast

from asgiref.sync import SyncToAsync, sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import asgi
from django.db import connections
from django.dispatch import Signal
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csp, csrf, locale, security
from django.urls import set_script_prefix
from django.utils.deprecation import MiddlewareMixin

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

ViewHook = Callable[[HttpRequest, Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]


class OnLoop(MiddlewareMixin):
    """A Django middleware whose hooks run on the event loop unless they say they need a thread."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        view_hook: ViewHook | None = getattr(self, "process_view", None)
        if self.async_mode and view_hook is not None:
            # The handler wraps a sync process_view in sync_to_async when it loads the
            # middleware; a coroutine function it calls as it is.
            setattr(self, "process_view", self._view_hook_on_loop(view_hook))  # noqa: B010 (typed as Django's)

    def _view_hook_on_loop(self, hook: ViewHook) -> Callable[..., Awaitable[HttpResponseBase | None]]:
        in_thread = sync_to_async(hook, thread_sensitive=True)

        async def process_view(
            request: HttpRequest, callback: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> HttpResponseBase | None:
            if self.view_needs_thread(request, callback):
                return await in_thread(request, callback, args, kwargs)
            return hook(request, callback, args, kwargs)

        return process_view

    def view_needs_thread(self, request: HttpRequest, callback: Callable[..., Any]) -> bool:
        return False

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return False

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        process_request = getattr(self, "process_request", None)
        if process_request is not None:
            response = process_request(request)
        response = response or await cast(Awaitable[HttpResponseBase], self.get_response(request))
        process_response = getattr(self, "process_response", None)
        if process_response is not None:
            if self.response_needs_thread(request, response):
                response = await sync_to_async(process_response, thread_sensitive=True)(request, response)
            else:
                response = process_response(request, response)
        return response


class SecurityMiddleware(OnLoop, security.SecurityMiddleware):
    pass


class ContentSecurityPolicyMiddleware(OnLoop, csp.ContentSecurityPolicyMiddleware):
    pass


class SessionMiddleware(OnLoop, sessions.SessionMiddleware):
    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        # Saving writes the cache and the database.
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class LocaleMiddleware(OnLoop, locale.LocaleMiddleware):
    pass


class CommonMiddleware(OnLoop, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(OnLoop, csrf.CsrfViewMiddleware):
    def view_needs_thread(self, request: HttpRequest, callback: Callable[..., Any]) -> bool:
        # The token of an unsafe request may be in its form body, which the check then parses.
        return request.method not in SAFE_METHODS and not getattr(callback, "csrf_exempt", False)


class AuthenticationMiddleware(OnLoop, auth.AuthenticationMiddleware):
    pass


class LoginRequiredMiddleware(OnLoop, auth.LoginRequiredMiddleware):
    def view_needs_thread(self, request: HttpRequest, callback: Callable[..., Any]) -> bool:
        # Whether the user signed in loads the session and the user.
        return bool(getattr(callback, "login_required", True))


class MessageMiddleware(OnLoop, messages.MessageMiddleware):
    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        # Messages read or added are stored back, in a cookie or the session.
        storage = getattr(request, "_messages", None)
        return storage is not None and bool(storage.used or storage.added_new)


class XFrameOptionsMiddleware(OnLoop, clickjacking.XFrameOptionsMiddleware):
    pass


def _django_path(ours: type[OnLoop]) -> str:
    django_class = ours.__bases__[1]  # OnLoop, then the Django class it runs on the loop
    return f"{django_class.__module__}.{django_class.__qualname__}"


# Django's middleware, as MIDDLEWARE names them, and the subclass served in its place.
ON_LOOP = {
    _django_path(ours): f"{__name__}.{ours.__qualname__}"
    for ours in (
        SecurityMiddleware,
        ContentSecurityPolicyMiddleware,
        SessionMiddleware,
        LocaleMiddleware,
        CommonMiddleware,
        CsrfViewMiddleware,
        AuthenticationMiddleware,
        LoginRequiredMiddleware,
        MessageMiddleware,
        XFrameOptionsMiddleware,
    )
}


def _async_receivers(signal: Signal, sender: type) -> bool:
    # Signal.send() runs an async receiver through async_to_sync, which fails on the loop.
    return bool(signal._live_receivers(sender)[1])


async def _send_on_loop(signal: Signal, *, sender: type, **named: Any) -> None:
    if _async_receivers(signal, sender):
        await signal.asend(sender=sender, **named)
    else:
        signal.send(sender=sender, **named)


def _request_thread_started() -> bool:
    """Whether this request has run sync code on a thread of its own (asgiref starts one,
    per ThreadSensitiveContext, at the first thread-sensitive call)."""
    context = SyncToAsync.thread_sensitive_context.get(None)
    return context is not None and context in SyncToAsync.context_to_thread_executor


class ASGIHandler(asgi.ASGIHandler):
    """Django's ASGI handler, with Django's middleware run on the loop (see above), and
    without a thread for a request that needs none.

    Django sends request_started and closes the response (which sends request_finished)
    through sync_to_async, so every request started a thread, and a second one to join it
    (0.4 ms of CPU a request, measured). The receivers close the database connections
    of the thread they run in, so they matter only in a thread the request's sync code
    ran in: the response is closed there when there is one, and on the loop otherwise.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        # Once, as the handler is made at start-up, before any request: the setting is
        # read by nothing else meanwhile.
        configured = settings.MIDDLEWARE
        settings.MIDDLEWARE = [ON_LOOP.get(path, path) for path in configured]
        try:
            super().load_middleware(is_async=is_async)
        finally:
            settings.MIDDLEWARE = configured

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Django 6.1's ASGIHandler.handle, but for how the two signals are sent.
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        with closing(body_file):
            set_script_prefix(asgi.get_script_prefix(scope))
            # The request has run nothing on a thread yet: no connection there to close.
            await _send_on_loop(signals.request_started, sender=self.__class__, scope=scope)
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                assert error_response is not None  # create_request gives one or the other
                body_file.close()
                await self.send_response(error_response, send)
                await self._close(error_response)
                return

            class RequestProcessed(Exception):
                pass

            response = None
            try:
                try:
                    async with asyncio.TaskGroup() as tasks:
                        tasks.create_task(self.listen_for_disconnect(receive))
                        response = await self.run_get_response(request)
                        await self.send_response(response, send)
                        raise RequestProcessed
                except* (RequestProcessed, RequestAborted):
                    pass
            except BaseExceptionGroup as exception_group:
                if len(exception_group.exceptions) == 1:
                    raise exception_group.exceptions[0]  # noqa: B904 (as Django raises it)
                raise
            if response is None:
                await signals.request_finished.asend(sender=self.__class__)
                if _request_thread_started():
                    await sync_to_async(connections.close_all)()
            else:
                await self._close(response)

    async def _close(self, response: HttpResponseBase) -> None:
        # close() sends request_finished: on the loop only if all its receivers are sync.
        if _request_thread_started():
            await sync_to_async(_close_in_request_thread)(response)
        elif _async_receivers(signals.request_finished, self.__class__):
            await sync_to_async(response.close)()
        else:
            response.close()


def _close_in_request_thread(response: HttpResponseBase) -> None:
    """Close the response in the thread the request's sync code ran in, then its database
    connections: the thread ends with the request. request_finished closes only those
    past CONN_MAX_AGE, and PostgreSQL's are kept (None), so each page request left one
    open until the garbage collector found it: 13 backends after 30 page requests."""
    try:
        response.close()
    finally:
        connections.close_all()

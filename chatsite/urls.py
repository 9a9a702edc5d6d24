from collections.abc import Callable
from functools import wraps

from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, QueryDict
from django.http.multipartparser import MultiPartParserError
from django.urls import include, path
from django.views import defaults
from django.views.i18n import set_language

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    # The sign-in pages offer the language switch too.
    path("i18n/setlang/", login_not_required(set_language), name="set_language"),
    path("", include("conversations.api_urls")),
    path("", include("conversations.urls")),
    path("", include("sharing.urls")),
]


def _body_unread(handler: Callable[..., HttpResponse]) -> Callable[[HttpRequest, Exception], HttpResponse]:
    """Django's error page, even for a POST body Django cannot parse.

    The error pages check a CSRF token, which reads a POST's form. For a URL that
    matches no route nothing has read it before, so a broken multipart body or too
    many fields raised inside the 404 handler and made it a 500. The page needs no
    body: one that cannot be read is taken as empty, as Django does for the 400 page.
    """

    @wraps(handler)
    def view(request: HttpRequest, exception: Exception) -> HttpResponse:
        try:
            request.POST  # noqa: B018 (parsed here to see whether it can be)
        except (MultiPartParserError, SuspiciousOperation):  # TooManyFieldsSent, RequestDataTooBig
            request.POST = QueryDict()
        return handler(request, exception)

    return view


handler400 = _body_unread(defaults.bad_request)
handler403 = _body_unread(defaults.permission_denied)
handler404 = _body_unread(defaults.page_not_found)

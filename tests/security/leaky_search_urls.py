"""The site's URLconf plus a search that forgets whose messages it looks through, for
testing the sweep: tests/security/test_isolation.py mounts it to show the sweep reports it."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path

from chatsite import urls as site_urls
from conversations.models import Message


def find(request: HttpRequest) -> JsonResponse:
    """GET /find/?q=<words>: messages holding every one of them (whoever's they are)."""
    hits = Message.objects.order_by("id")
    for word in request.GET.get("q", "").split():
        hits = hits.filter(content__icontains=word)
    return JsonResponse({"hits": [m.content for m in hits[:50]]})


LEAKY_SEARCH = "find/"

handler400 = site_urls.handler400
handler403 = site_urls.handler403
handler404 = site_urls.handler404
handler500 = getattr(site_urls, "handler500", "django.views.defaults.server_error")

urlpatterns = [path("", include("chatsite.urls")), path(LEAKY_SEARCH, find)]

"""The site's URLconf plus three routes that leak another user's data, for testing the sweep.

Each looks up an object by the id it is given and never asks whose it is: the mistake
an IDOR is. (The third takes a shared link's token, the key to it, and also a link's
id, which is no key.) Only tests/security/test_isolation.py mounts this, to show the sweep reports them.
"""

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import include, path

from chatsite import urls as site_urls
from conversations.models import Conversation, Message
from conversations.selectors import conversation_id_parse
from sharing.models import SharedLink


def export(request: HttpRequest) -> JsonResponse:
    """GET /export/?conversation=<id>: the conversation's messages (whoever owns it)."""
    try:
        conversation = Conversation.objects.get(pk=conversation_id_parse(request.GET.get("conversation")))
    except Conversation.DoesNotExist:
        raise Http404("No such conversation.") from None
    return JsonResponse({"messages": [m.content for m in conversation.messages.order_by("id")]})


def message(request: HttpRequest, message_id: int) -> HttpResponse:
    """/m/<int:message_id>/: a message's text (whoever's it is)."""
    return HttpResponse(get_object_or_404(Message, pk=message_id).content, content_type="text/plain")


def shared(request: HttpRequest, token: str) -> JsonResponse:
    """/shared/<token>/: a shared copy by its token, or by the link's id (the mistake)."""
    found = SharedLink.objects.filter(token=token).first()
    if found is None and token.isdigit():
        found = SharedLink.objects.filter(pk=int(token)).first()
    if found is None:
        raise Http404("No such link.")
    return JsonResponse({"messages": found.messages})


LEAKY_ROUTES = ("export/", "m/<int:message_id>/", "shared/<str:token>/")

# The site's own error pages, as the real URLconf has them.
handler400 = getattr(site_urls, "handler400", "django.views.defaults.bad_request")
handler403 = getattr(site_urls, "handler403", "django.views.defaults.permission_denied")
handler404 = getattr(site_urls, "handler404", "django.views.defaults.page_not_found")
handler500 = getattr(site_urls, "handler500", "django.views.defaults.server_error")

urlpatterns = [
    path("", include("chatsite.urls")),
    path("export/", export),
    path("m/<int:message_id>/", message),
    path("shared/<str:token>/", shared),
]

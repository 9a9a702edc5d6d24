"""ASGI entry point: HTTP through Django, WebSockets through Channels."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

# Django must be set up before anything imports models (the routing below does).
# What get_asgi_application() does, with the handler that runs Django's middleware on the loop.
django.setup(set_prefix=False)

from chatsite.http_handler import ASGIHandler  # noqa: E402

django_http = ASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from chatsite import http_limits  # noqa: E402
from conversations.lifecycle import install_daphne_hooks  # noqa: E402
from conversations.routing import websocket_urlpatterns  # noqa: E402

install_daphne_hooks()
http_limits.install()

application = ProtocolTypeRouter(
    {
        # Static files are served by the app itself so `./run` needs nothing else;
        # behind a reverse proxy, let the proxy serve /static/ from STATIC_ROOT.
        "http": ASGIStaticFilesHandler(django_http),
        # Cross-site pages cannot open a socket with the user's cookies (origin check).
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

"""For operators and their tools: /healthz for load balancers, /metrics for Prometheus."""

import hmac
from dataclasses import asdict

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from conversations.health import health_check
from conversations.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from conversations.metrics import metrics_text


@login_not_required
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for staff or a scraper with `Authorization: Bearer METRICS_TOKEN`."""
    if not _may_read_metrics(request):
        status = 403 if request.user.is_authenticated or "Authorization" in request.headers else 401
        response = HttpResponse(status=status)
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="chatsite-metrics"'
        return response
    response = HttpResponse(metrics_text(), content_type=METRICS_CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response


def _may_read_metrics(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    scheme, _space, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    return bool(request.user.is_authenticated and request.user.is_staff)


@login_not_required
@require_GET
async def healthz(request: HttpRequest) -> HttpResponse:
    """For load balancers: 200 while this process can serve, 503 (with Retry-After) when not."""
    health = await health_check()
    checks = {"database": health.database, "redis": health.redis, "provider": health.provider}
    response = JsonResponse(
        {"status": health.status, "checks": {name: asdict(check) for name, check in checks.items()}},
        status=200 if health.serving else 503,
    )
    if not health.serving:
        response["Retry-After"] = str(settings.CHAT_RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response

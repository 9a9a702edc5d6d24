"""How every API call is taken in: the method, who calls (a token or the session
cookie), CSRF for cookies, the legacy `user_id`, the parameters, and errors as JSON.

conversations.api and conversations.search_api hold the endpoints.
"""

import json
import re
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from conversations import services, tokens
from conversations.db import in_thread
from conversations.models import Conversation

Handler = Callable[[HttpRequest, AbstractBaseUser, dict[str, Any]], Awaitable[HttpResponseBase]]

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
STATUS_FOR_CODE = {
    "message_too_long": 413,
    "image_too_large": 413,
    "reply_in_progress": 409,
    "rate_limited": 429,
    # Overload and Redis trouble: the client should come back after Retry-After.
    "busy": 503,
    "unavailable": 503,
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="chatsite"'
    return response


def ok(data: dict[str, Any], status: int = 200) -> JsonResponse:
    return JsonResponse(data, status=status, json_dumps_params={"ensure_ascii": False})


async def _authenticate(request: HttpRequest) -> tuple[AbstractBaseUser | None, bool]:
    """The caller and whether a token (not a cookie) identified them."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _space, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            return None, True
        user = await in_thread(tokens.api_token_authenticate)(raw=raw.strip())
        return user, True
    session_user = await request.auser()
    return (session_user if session_user.is_authenticated else None), False


def _csrf_rejected(request: HttpRequest) -> bool:
    # The views are csrf_exempt because token calls need no CSRF token; cookie calls
    # get the same check Django's middleware would make.
    check = CsrfViewMiddleware(lambda _request: HttpResponse())
    check.process_request(request)
    return check.process_view(request, None, (), {}) is not None  # type: ignore[arg-type]


# Lone UTF-16 surrogates: not Unicode text (no UTF-8 encodes them), though JSON's
# "\ud800" escapes can spell them. Nothing could store or send them back.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _pairs(encoded: str | bytes) -> dict[str, str]:
    """A query string or form body, strictly: text that is not UTF-8 is refused, not replaced."""
    try:
        pairs = parse_qsl(
            encoded.decode() if isinstance(encoded, bytes) else encoded,
            keep_blank_values=True,
            errors="strict",
            max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS,
        )
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_parameter", _("The parameters are not valid UTF-8.")) from None
    except ValueError:  # more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS
        raise ApiError(400, "too_many_fields", _("The request has too many parameters.")) from None
    return dict(pairs)  # a repeated name: the last one counts, as with QueryDict.dict()


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        # Strict UTF-8 first: json.loads() would let encoded surrogates through.
        data = json.loads(body.decode())
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ApiError(400, "invalid_json", _("The request body is not valid JSON.")) from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", _("The request body must be a JSON object."))
    # Walk every key and value, without recursion: parsed JSON can be deep.
    pending: list[Any] = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str) and LONE_SURROGATE.search(value):
            raise ApiError(400, "invalid_json", _("The request body holds text that is not valid Unicode."))
    return data


def _params(request: HttpRequest) -> dict[str, Any]:
    """Query string, then form or JSON body: old clients send either."""
    params: dict[str, Any] = _pairs(request.META.get("QUERY_STRING", ""))
    if request.method in UNSAFE_METHODS:
        if request.content_type == "application/json":
            if request.body.strip():
                params.update(_json_object(request.body))
        elif request.content_type == "application/x-www-form-urlencoded":
            params.update(_pairs(request.body))
        else:
            params.update(request.POST.dict())
    return params


def param_text(params: dict[str, Any], name: str) -> str:
    """A text parameter ("" when absent or null); any other type is refused.

    What text may hold (no NUL in a message or title, ...) is the services' to say.
    """
    value = params.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApiError(400, "invalid_parameter", _("%(name)s must be text.") % {"name": name})
    return value


def _caller_named(params: dict[str, Any], user: AbstractBaseUser) -> bool:
    """Old clients send user_id (text, or a JSON number): accepted only when it names the caller."""
    if "user_id" not in params:
        return True
    value = params["user_id"]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) == str(user.pk)
    return param_text(params, "user_id") == str(user.pk)


def api_view(*methods: str) -> Callable[[Handler], Callable[..., Any]]:
    """Method check, authentication, CSRF for cookies, legacy user_id, and JSON errors."""

    def decorate(handler: Handler) -> Callable[..., Any]:
        @login_not_required
        @csrf_exempt
        @wraps(handler)
        async def view(request: HttpRequest, **kwargs: Any) -> HttpResponseBase:
            if request.method not in methods:
                response = error_response(
                    405, "method_not_allowed", _("Use %(methods)s.") % {"methods": ", ".join(methods)}
                )
                response["Allow"] = ", ".join(methods)
                return response
            user, by_token = await _authenticate(request)
            if user is None:
                return error_response(401, "unauthenticated", _("Sign in or send a valid API token."))
            if not by_token and request.headers.get("Sec-Fetch-Site") == "cross-site":
                # A cookie call from another site's page: GET /chat/stream starts a reply,
                # so even a "safe" method must not run on another site's say-so.
                return error_response(403, "cross_site", _("Cross-site requests are not accepted."))
            try:
                # The CSRF check may read a form body: its errors are answered below too.
                if not by_token and request.method in UNSAFE_METHODS and _csrf_rejected(request):
                    return error_response(
                        403, "csrf_failed", _("CSRF check failed: send the X-CSRFToken header.")
                    )
                params = _params(request)
                if not _caller_named(params, user):
                    raise Conversation.DoesNotExist
                return await handler(request, user, {**params, **kwargs})
            except ApiError as exc:
                return error_response(exc.status, exc.code, exc.message)
            except services.ChatError as exc:
                response = error_response(STATUS_FOR_CODE.get(exc.code, 400), exc.code, exc.message)
                if exc.retry_after is not None:
                    response["Retry-After"] = str(exc.retry_after)
                return response
            except Conversation.DoesNotExist:
                return error_response(404, "not_found", _("No such conversation."))
            except RequestDataTooBig:
                return error_response(413, "too_large", _("The request is too large."))
            except (TooManyFieldsSent, TooManyFilesSent):
                return error_response(400, "too_many_fields", _("The request has too many parameters."))
            except MultiPartParserError:
                return error_response(400, "invalid_body", _("The request body could not be read."))

        return view

    return decorate


def param_flag(params: dict[str, Any], name: str) -> bool:
    """A yes/no parameter: 1/true/yes or 0/false/no (or absent: no), as text or JSON."""
    value = params.get(name)
    if isinstance(value, bool) or value is None:
        return bool(value)
    text = value.strip().lower() if isinstance(value, str) else str(value)
    if text in {"1", "true", "yes"}:
        return True
    if text in {"", "0", "false", "no"}:
        return False
    raise ApiError(400, "invalid_parameter", _("%(name)s must be 1 or 0.") % {"name": name})


def param_required(params: dict[str, Any], name: str) -> str:
    value = param_text(params, name)
    if value.strip() == "":
        raise ApiError(400, "missing_parameter", _("%(name)s is required.") % {"name": name})
    return value


def param_limit(params: dict[str, Any], *, default: int, most: int) -> int:
    """`limit`: a whole number from 1 to `most`, as text or a JSON number."""
    value = params.get("limit")
    if value is None or value == "":
        return default
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise ApiError(
            400, "invalid_parameter", _("limit must be a whole number from 1 to %(most)s.") % {"most": most}
        )
    return value

"""Chatsite settings: one module, driven by environment variables (and `.env`).

Local defaults need no configuration at all; `DEBUG=false` switches production
hardening on. Every variable is listed with its default in `.env.example`
(CHATSITE_LOCAL_MODEL_IN_USE and SQLITE_TEST_PATH are set by ./run and the tests).
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from dotenv import load_dotenv

from chatsite.database_url import database_settings
from chatsite.redis_url import cache_settings, sentinel_addresses, sentinel_master_checked

BASE_DIR = Path(__file__).resolve().parent.parent

# Real environment variables win over `.env`, so CI and `./run` can override it.
load_dotenv(BASE_DIR / ".env", override=False)


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def env_choice(name: str, default: str, choices: list[str]) -> str:
    value = os.environ.get(name, "").strip().lower() or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)

_DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY") or _DEV_SECRET_KEY
# Old keys still accepted (sessions, signed links, provider API keys) while rotating SECRET_KEY.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
if not DEBUG and (SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured(
        "DEBUG=false needs a strong SECRET_KEY (50+ random characters). Generate one with: "
        "python -c 'import secrets; print(secrets.token_urlsafe(64))'"
    )

API_HOST = env_str("API_HOST", "127.0.0.1")
API_PORT = env_int("API_PORT", 8000)
# True behind a reverse proxy that sets X-Forwarded-For / X-Forwarded-Proto: the
# client's real address then counts for sign-in limits (daphne --proxy-headers).
PROXY_HEADERS = env_bool("PROXY_HEADERS", False)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # daphne's runserver must come before staticfiles (its own system check).
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "accounts",
    "roles",
    "providers",
    "conversations",
    "sharing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "chatsite.timezones.TimezoneMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "chatsite.database_unavailable.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

TEMPLATES = [
    {
        # The site's own pages and fragments. Looked up first; the admin's
        # templates are not in this folder, so they fall through to Django's engine.
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {
            "environment": "chatsite.jinja2.environment",
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
            ],
        },
    },
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite by default; the path can move (tests use a file-backed database so
# the live server and the test share it). DATABASE_URL selects PostgreSQL instead
# (chatsite.database_url).
DATABASE_URL = env_str("DATABASE_URL")
DATABASES = {
    "default": database_settings(DATABASE_URL)
    if DATABASE_URL
    else {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env_str("SQLITE_PATH") or str(BASE_DIR / "db.sqlite3"),
        "OPTIONS": {
            # WAL lets readers run while a reply is being saved; the timeout
            # absorbs short write bursts from several streams finishing at once.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
        # Kept open: channels closes a connection after every database call from async
        # code unless it may live on, and reopening SQLite (and its PRAGMAs) for each of a
        # reply's writes was a large share of a busy server's database thread.
        "CONN_MAX_AGE": None,
        # A file, not memory: the browser tests' server process shares it.
        "TEST": {"NAME": env_str("SQLITE_TEST_PATH") or str(BASE_DIR / "var" / "test.sqlite3")},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, session store, channel layer, reply streams -------------
# `./run` and the test suite start an embedded real Redis and set REDIS_URL.
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
# High availability: the sentinels ("host:port,host:port") that name the master of the
# service REDIS_SENTINEL_MASTER. Every client asks them and follows a failover; REDIS_URL
# then gives only the scheme, username, password and database (chatsite.redis_url).
REDIS_SENTINELS = sentinel_addresses(env_list("REDIS_SENTINELS", []))
# Checked only where it is used: an empty or odd value without sentinels stops nothing.
REDIS_SENTINEL_MASTER = env_str("REDIS_SENTINEL_MASTER") or "mymaster"
if REDIS_SENTINELS:
    sentinel_master_checked(REDIS_SENTINEL_MASTER)
# How every client reaches the sentinels themselves: a sentinel answers at once or is down.
REDIS_SENTINEL_KWARGS = {
    "password": env_str("REDIS_SENTINEL_PASSWORD") or None,
    "socket_connect_timeout": 2,
    "socket_timeout": 2,
    "driver_info": None,
}

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "chatsite"),
        **cache_settings(
            REDIS_URL,
            sentinels=REDIS_SENTINELS,
            master=REDIS_SENTINEL_MASTER,
            sentinel_kwargs=REDIS_SENTINEL_KWARGS,
            options={
                "SOCKET_CONNECT_TIMEOUT": 2,
                "SOCKET_TIMEOUT": 2,
                # A Redis outage degrades the cache to misses instead of 500s; the
                # sessions then come from the database (cached_db).
                "IGNORE_EXCEPTIONS": True,
                # No CLIENT SETINFO: redis-py reads its version from the package metadata for
                # every new connection (~0.3 ms of CPU) only to send it.
                "CONNECTION_POOL_KWARGS": {"driver_info": None},
            },
        ),
    }
}
DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

SESSION_ENGINE = "accounts.sessions"

# Seconds a Redis command may take before it fails; blocking reads add their own block time.
REDIS_SOCKET_TIMEOUT = env_float("REDIS_SOCKET_TIMEOUT", 5.0)
# The reply engine's async connections per serving process: commands wait for a free one
# (up to REDIS_POOL_TIMEOUT seconds) rather than fail; nothing holds one for long.
REDIS_POOL_SIZE = env_int("REDIS_POOL_SIZE", 200)
REDIS_POOL_TIMEOUT = env_float("REDIS_POOL_TIMEOUT", 20.0)

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "chatsite.channel_layer.ChannelLayer",
        "CONFIG": {
            "hosts": [
                {
                    # No address: the layer's pool goes to REDIS_URL's server or the
                    # sentinels' master, as the reply engine's does (chatsite.channel_layer).
                    # channels-redis waits for a socket's messages with a 5 s BZPOPMIN;
                    # redis-py's default 5 s read timeout fired first, and every idle
                    # chat socket was closed with 1011 every few seconds.
                    "socket_timeout": 5 + REDIS_SOCKET_TIMEOUT + 5,
                    "socket_connect_timeout": 2,
                    "socket_keepalive": True,
                    "max_connections": REDIS_POOL_SIZE,
                    # No CLIENT SETINFO (see CACHES): a burst of new sockets opens many
                    # connections at once.
                    "driver_info": None,
                }
            ],
            "prefix": env_str("CACHE_KEY_PREFIX", "chatsite"),
        },
    }
}

# --- Auth ------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:home"
LOGOUT_REDIRECT_URL = "login"
CHATSITE_SIGNUP_ENABLED = env_bool("CHATSITE_SIGNUP_ENABLED", True)
# Password reset links stay valid this long (seconds).
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3 * 24 * 3600)

# --- Email (password reset) --------------------------------------------------
# With no EMAIL_HOST, mail is printed to the server's console; with one, sent by SMTP
# (STARTTLS on port 587, TLS on 465 unless EMAIL_USE_TLS / EMAIL_USE_SSL say otherwise).
_email_host = env_str("EMAIL_HOST")
_email_port = env_int("EMAIL_PORT", 587)
_email_backend = env_str("EMAIL_BACKEND") or (
    "django.core.mail.backends.smtp.EmailBackend"
    if _email_host
    else "django.core.mail.backends.console.EmailBackend"
)
_email_options: dict[str, object] = {}
if _email_backend.endswith("smtp.EmailBackend"):
    _email_options = {
        "host": _email_host or "localhost",
        "port": _email_port,
        "username": env_str("EMAIL_HOST_USER"),
        "password": env_str("EMAIL_HOST_PASSWORD"),
        "use_tls": env_bool("EMAIL_USE_TLS", _email_port == 587),
        "use_ssl": env_bool("EMAIL_USE_SSL", _email_port == 465),
        "timeout": env_int("EMAIL_TIMEOUT", 10),
    }
    if _email_options["use_tls"] and _email_options["use_ssl"]:
        raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL cannot both be true")
MAILERS = {"default": {"BACKEND": _email_backend, "OPTIONS": _email_options}}
# Printing mail is the documented default even with DEBUG=false (a small install's reset
# links then appear in the server's log): `check --deploy` is not to call that an error.
SILENCED_SYSTEM_CHECKS = [] if _email_host or env_str("EMAIL_BACKEND") else ["mail.E001"]
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Chatsite <chatsite@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Admin -------------------------------------------------------------------
# Staff can read users' conversations in the admin (read-only); false hides them there.
CHATSITE_ADMIN_CONVERSATIONS = env_bool("CHATSITE_ADMIN_CONVERSATIONS", True)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Language --------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_TZ = True

# --- Static files ----------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Uploaded images, through Django's storage API (STORAGES["default"]); never served
# from here directly: only to their owner, by the app (conversations.attachment_views).
MEDIA_ROOT = Path(env_str("MEDIA_ROOT") or BASE_DIR / "var" / "media")

# --- Model provider --------------------------------------------------------
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL")
OPENAI_MODEL = env_str("OPENAI_MODEL", "gpt-4o-mini")
# Whether the .env provider's model reads images (most current cloud models do).
OPENAI_MODEL_VISION = env_bool("OPENAI_MODEL_VISION", False)
# How the .env provider is named in the model picker; other providers are added in the admin.
OPENAI_PROVIDER_LABEL = env_str("OPENAI_PROVIDER_LABEL", "OpenAI-compatible")
# Provider API keys typed in the admin are encrypted at rest with a key derived from
# this (default: SECRET_KEY, with SECRET_KEY_FALLBACKS still read). See providers.secrets.
PROVIDER_KEYS_SECRET = env_str("PROVIDER_KEYS_SECRET")
PROVIDER_KEYS_SECRET_FALLBACKS = env_list("PROVIDER_KEYS_SECRET_FALLBACKS", [])
# Set by `./run` when it started the built-in tiny model because no provider was configured.
CHATSITE_LOCAL_MODEL_IN_USE = env_bool("CHATSITE_LOCAL_MODEL_IN_USE", False)
# Set by `./run` too: where it says how far preparing the local model has got (it serves
# meanwhile). See providers.local_model_state.
CHATSITE_LOCAL_MODEL_STATE_FILE = env_str("CHATSITE_LOCAL_MODEL_STATE_FILE")
# The SDK's default read timeout is 600 s: far too long to leave a user staring
# at a spinner. Connect fails fast; read is the gap allowed between tokens.
OPENAI_CONNECT_TIMEOUT = env_float("OPENAI_CONNECT_TIMEOUT", 5.0)
OPENAI_READ_TIMEOUT = env_float("OPENAI_READ_TIMEOUT", 60.0)
# Retries only happen before the first byte; a retry mid-stream would repeat text.
OPENAI_MAX_RETRIES = min(env_int("OPENAI_MAX_RETRIES", 1), 1)
# A 429's Retry-After is honoured up to this many seconds; longer means "busy, try later".
OPENAI_RETRY_AFTER_CAP = env_float("OPENAI_RETRY_AFTER_CAP", 10.0)

# --- Chat behaviour --------------------------------------------------------
# The history sent upstream is the most recent rounds (a user message and its reply) that
# fit in the model's context window (its provider's setting in the admin, or this for the
# .env model and any model without one), less CHAT_REPLY_TOKENS kept for the reply.
OPENAI_CONTEXT_WINDOW = env_int("OPENAI_CONTEXT_WINDOW", 8192)
CHAT_REPLY_TOKENS = env_int("CHAT_REPLY_TOKENS", 1024)
# At most this many rounds besides (0: as many as fit).
CHAT_CONTEXT_ROUNDS = env_int("CHAT_CONTEXT_ROUNDS", 0)
# What no longer fits is summarised by the model after a reply (conversations.summaries)
# and sent in its place; false: it is left out.
CHAT_SUMMARIES = env_bool("CHAT_SUMMARIES", True)
CHAT_SUMMARY_TIMEOUT = env_float("CHAT_SUMMARY_TIMEOUT", 60.0)
# After a conversation's first reply the model writes its title (conversations.titles):
# with the reply's own model, or CHAT_TITLE_MODEL of the .env provider.
CHAT_TITLES = env_bool("CHAT_TITLES", True)
CHAT_TITLE_MODEL = env_str("CHAT_TITLE_MODEL", "")
CHAT_TITLE_TIMEOUT = env_float("CHAT_TITLE_TIMEOUT", 30.0)
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 32_000)
# Images attached to a message: at most this many, each at most this many bytes and
# pixels as uploaded, stored with its longest side at most CHAT_IMAGE_MAX_SIDE.
CHAT_IMAGES_PER_MESSAGE = env_int("CHAT_IMAGES_PER_MESSAGE", 4)
CHAT_IMAGE_MAX_BYTES = env_int("CHAT_IMAGE_MAX_BYTES", 10 * 1024 * 1024)
CHAT_IMAGE_MAX_PIXELS = env_int("CHAT_IMAGE_MAX_PIXELS", 40_000_000)
CHAT_IMAGE_MAX_SIDE = env_int("CHAT_IMAGE_MAX_SIDE", 2048)
# Uploaded images not sent with a message: at most this many per user at a time (the
# disk is not a free store), each removed this many hours after its upload.
CHAT_UNSENT_IMAGES_PER_USER = env_int("CHAT_UNSENT_IMAGES_PER_USER", 20)
CHAT_UNSENT_IMAGE_HOURS = env_int("CHAT_UNSENT_IMAGE_HOURS", 24)
# The largest export a user may import from the settings page (manage.py import_conversations
# has no limit): a ChatGPT export of years of use is tens of MB.
CHAT_IMPORT_MAX_BYTES = env_int("CHAT_IMPORT_MAX_BYTES", 100 * 1024 * 1024)
# A request body held in memory (not a file upload) may carry one image as base64 (the
# demo API's image_data): 4/3 of its bytes, and room for the rest of the JSON.
DATA_UPLOAD_MAX_MEMORY_SIZE = CHAT_IMAGE_MAX_BYTES * 4 // 3 + 256 * 1024
# Streamed deltas are coalesced into at most one frame per interval (~20/s).
CHAT_STREAM_INTERVAL = env_float("CHAT_STREAM_INTERVAL", 0.05)
# Frames one serving process sends a second across all its replies; past it the interval
# grows (a frame costs the same whatever its size): fewer, larger pieces under load.
CHAT_STREAM_FRAMES_PER_SECOND = env_int("CHAT_STREAM_FRAMES_PER_SECOND", 1000)
# A reply being written holds its conversation's slot for this long without renewal:
# after a crash, the reply is marked interrupted once this has passed.
CHAT_LEASE_SECONDS = env_int("CHAT_LEASE_SECONDS", 15)
# A long reply's text is saved to the database this often while it is written.
CHAT_CHECKPOINT_SECONDS = env_float("CHAT_CHECKPOINT_SECONDS", 10.0)
# Replies one serving process writes at once; past it a new message is refused ("busy,
# try again"), HTTP 503 with Retry-After on the API.
CHAT_MAX_REPLIES_PER_PROCESS = env_int("CHAT_MAX_REPLIES_PER_PROCESS", 1000)
# What Retry-After says when the service is busy or Redis is unreachable.
CHAT_RETRY_AFTER_SECONDS = env_int("CHAT_RETRY_AFTER_SECONDS", 5)
# A bearer token that lets a Prometheus scraper read GET /metrics (staff can always).
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
# On SIGTERM (or Ctrl-C), how long a serving process lets its running replies finish
# before it saves what is left of them as `interrupted`. New replies are refused meanwhile.
CHATSITE_DRAIN_SECONDS = env_float("CHATSITE_DRAIN_SECONDS", 20.0)
# How long a finished reply's event log stays in Redis for late watchers.
CHAT_STREAM_TTL = env_int("CHAT_STREAM_TTL", 600)

# --- Limits (per user; a user's own limits can be set in the admin). 0 = no limit.
CHAT_LIMIT_MESSAGES_PER_MINUTE = env_int("CHAT_LIMIT_MESSAGES_PER_MINUTE", 20)
CHAT_LIMIT_CONCURRENT_REPLIES = env_int("CHAT_LIMIT_CONCURRENT_REPLIES", 3)
CHAT_LIMIT_DAILY_TOKENS = env_int("CHAT_LIMIT_DAILY_TOKENS", 500_000)
# Failed sign-ins allowed per client IP and per account within the window.
SIGNIN_LIMIT_PER_IP = env_int("SIGNIN_LIMIT_PER_IP", 20)
SIGNIN_LIMIT_PER_ACCOUNT = env_int("SIGNIN_LIMIT_PER_ACCOUNT", 8)
SIGNIN_LIMIT_WINDOW_SECONDS = env_int("SIGNIN_LIMIT_WINDOW_SECONDS", 900)
# Shared conversations a user may copy ("continue") in an hour.
SHARE_CONTINUE_PER_HOUR = env_int("SHARE_CONTINUE_PER_HOUR", 30)

# --- Security --------------------------------------------------------------
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    # htmx's indicator styles are off (see base.html), so no inline styles are needed.
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Load balancers probe over plain HTTP, from inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    if PROXY_HEADERS:
        # Only behind the TLS-terminating proxy that sets it: without one, any client
        # could send X-Forwarded-Proto: https and be served over plain HTTP.
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "chatsite.logformat.JsonFormatter"},
    },
    # LOG_FORMAT=json: one JSON object per line (with each reply's fields as keys).
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env_choice("LOG_FORMAT", "plain", ["plain", "json"]),
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}

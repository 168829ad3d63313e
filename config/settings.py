"""Parley settings, read from the environment (django-environ).

Embedded defaults make `make run` work on a bare machine: SQLite (WAL), local-memory cache,
in-memory channel layer, DEBUG on. Production sets DATABASE_URL, REDIS_URL, DEBUG=0 and real
secrets; `.env.example` lists every variable.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from csp.constants import NONE, SELF

from core.local_secrets import stored_secret

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env is a convenience for development; production passes real environment variables.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)

MIN_SECRET_LENGTH = 32


def _fail(message: str) -> None:
    # One line on stderr and a non-zero exit: the operator sees exactly which variable to set,
    # not a traceback.
    raise SystemExit(f"Parley configuration error: {message}")


def _secret(name: str) -> str:
    value = env.str(name, default="")
    if not value:
        if DEBUG:
            return stored_secret(BASE_DIR / ".local" / "dev-secrets.json", name)
        _fail(f"{name} is required when DEBUG=0 (at least {MIN_SECRET_LENGTH} characters).")
    if len(value) < MIN_SECRET_LENGTH and not DEBUG:
        _fail(f"{name} must be at least {MIN_SECRET_LENGTH} characters long.")
    return value


SECRET_KEY = _secret("SECRET_KEY")


def _signing_keys() -> list[str]:
    """JWT_SIGNING_KEYS (comma-separated; the first signs, every one verifies), or
    JWT_SIGNING_KEY alone. Rotation: put the new key first and keep the old one until the
    tokens it signed have expired; removing a key ends its tokens (docs/security.md)."""
    keys = [key.strip() for key in env.list("JWT_SIGNING_KEYS", default=[]) if key.strip()]
    if not keys:
        return [_secret("JWT_SIGNING_KEY")]
    for position, key in enumerate(keys, start=1):
        if len(key) < MIN_SECRET_LENGTH:
            _fail(
                f"JWT_SIGNING_KEYS: key {position} is shorter than {MIN_SECRET_LENGTH} characters."
            )
    if len(set(keys)) != len(keys):
        _fail("JWT_SIGNING_KEYS lists the same key twice.")
    return keys


JWT_SIGNING_KEYS = _signing_keys()
JWT_SIGNING_KEY = JWT_SIGNING_KEYS[0]  # the key that signs new tokens
if not DEBUG and SECRET_KEY in JWT_SIGNING_KEYS:
    _fail("JWT_SIGNING_KEY must differ from SECRET_KEY.")


def _field_encryption_keys() -> list[str]:
    """FIELD_ENCRYPTION_KEYS: Fernet keys (URL-safe base64 of 32 bytes), comma-separated; the
    first encrypts, every one decrypts (cryptography's MultiFernet). Required when DEBUG=0;
    in DEBUG one is derived from SECRET_KEY so `make run` needs no setup."""
    import base64
    import hashlib

    from cryptography.fernet import Fernet

    keys = [key.strip() for key in env.list("FIELD_ENCRYPTION_KEYS", default=[]) if key.strip()]
    if not keys:
        if not DEBUG:
            _fail(
                "FIELD_ENCRYPTION_KEYS is required when DEBUG=0 (comma-separated Fernet keys; "
                "make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')."
            )
        digest = hashlib.sha256(f"parley.field-encryption:{SECRET_KEY}".encode()).digest()
        return [base64.urlsafe_b64encode(digest).decode()]
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            _fail(
                f"FIELD_ENCRYPTION_KEYS: key {position} is not a Fernet key "
                "(URL-safe base64 of 32 bytes)."
            )
    return keys


FIELD_ENCRYPTION_KEYS = _field_encryption_keys()
# Staff and superusers must sign in with a second factor (TOTP) and staff routes refuse tokens
# without one. On in production; off in DEBUG so the README's walk-through works as written.
STAFF_MFA_REQUIRED = env.bool("STAFF_MFA_REQUIRED", default=not DEBUG)


def _allow_list(name: str, default: list[str]) -> list[str]:
    values = [v.strip() for v in env.list(name, default=default) if v.strip()]
    if not DEBUG and "*" in values:
        _fail(f"{name} must not contain '*' when DEBUG=0; list the allowed values.")
    return values


ALLOWED_HOSTS = _allow_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CORS_ALLOWED_ORIGINS = _allow_list("CORS_ALLOWED_ORIGINS", [])
CSRF_TRUSTED_ORIGINS = _allow_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "config.apps.ParleyAdminConfig",  # Django's admin with Parley's admin site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "csp",
    "channels",
    "ninja",
    "django_ratelimit",
    "rest_framework_simplejwt.token_blacklist",
    "django_tasks",
    "django_tasks_db",
    "accounts",
    "messaging",
    "escalations",
    "integrations",
]

MIDDLEWARE = [
    # First, so every response (errors and rejections included) carries X-Request-ID.
    "config.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "config.middleware.ApiBodySizeLimitMiddleware",
    # Django's session, authentication and messages middleware, passing /api/ requests straight
    # on: the API never authenticates by cookie (config/middleware.py).
    "config.middleware.BrowserSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "config.middleware.BrowserAuthenticationMiddleware",
    "config.middleware.BrowserMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # django-csp's, with the settings' policy built once (config/middleware.py).
    "config.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
SQLITE_PATH = BASE_DIR / "db.sqlite3"
# An empty DATABASE_URL (as in a copied .env.example) means the embedded default.
DATABASES = {
    "default": environ.Env.db_url_config(
        env.str("DATABASE_URL", default="") or f"sqlite:///{SQLITE_PATH}"
    )
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the writer; IMMEDIATE takes the write lock at BEGIN so two
    # writers queue on the busy timeout instead of failing with "database is locked" mid-way.
    _db["OPTIONS"] = {
        "init_command": (
            "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA busy_timeout=20000"
        ),
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file (not :memory:) so threads and server subprocesses in tests see one database.
    _db["TEST"] = {"NAME": str(BASE_DIR / ".local" / "test-db.sqlite3")}
elif _db["ENGINE"] in ("django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"):
    _db["ENGINE"] = "django.db.backends.postgresql"
    # Connections come from psycopg's pool (CONN_MAX_AGE=0), which works under WSGI and ASGI
    # alike; under ASGI CONN_MAX_AGE>0 leaks a connection per request (docs/operations.md).
    # The WSGI tier alone is started with DB_CONN_MAX_AGE (config.serving): each request thread
    # then keeps its own connection, without the pool's check-out and return and Django's
    # connect/close around every request — measured 1.11-1.24x the message route's req/s.
    _db["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
    _pool = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DB_POOL_MAX_SIZE", default=20),
        # How long a request waits for a pooled connection. While PostgreSQL does not
        # answer, every request and /ready wait this long (docs/operations.md, Readiness).
        "timeout": env.float("DB_POOL_TIMEOUT", default=3.0),
    }
    _db["OPTIONS"] = {
        **({} if _db["CONN_MAX_AGE"] else {"pool": _pool}),
        # libpq: give up on a server that accepts TCP but never answers (a partition).
        "connect_timeout": env.int("DB_CONNECT_TIMEOUT", default=3),
        # Only core.fixedsql's server-side-binding cursors can prepare (the ORM binds on the
        # client): their fixed statements are prepared after this many runs on a connection.
        # Empty disables it, for a pooler that drops prepared statements (docs/operations.md).
        "prepare_threshold": env.int("DB_PREPARE_THRESHOLD", default=5)
        if env.str("DB_PREPARE_THRESHOLD", default="5").strip()
        else None,
    }
    _db["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="test_parley")}
_db.setdefault("ATOMIC_REQUESTS", False)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- Cache and channel layer -----------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# redis-py waits 5 s by default on a Redis that stops answering: every rate-limited request,
# every push from a request thread and /ready would wait that long (docs/operations.md,
# Readiness).
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=1.0)

# The channel layer's Redis servers: channels-redis shards groups and channels over them by a
# consistent hash of the name, so sockets and pushes of one conversation meet on one shard
# whatever host they are on. Defaults to REDIS_URL alone; the cache and the rate limits stay on
# REDIS_URL (docs/operations.md, "Several hosts").
CHANNEL_REDIS_URLS = [
    url.strip() for url in env.list("CHANNEL_REDIS_URLS", default=[]) if url.strip()
] or ([REDIS_URL] if REDIS_URL else [])
for _shard in CHANNEL_REDIS_URLS:
    if urlsplit(_shard).scheme not in ("redis", "rediss", "unix"):
        _fail("CHANNEL_REDIS_URLS: each entry must be a redis://, rediss:// or unix:// URL")
if CHANNEL_REDIS_URLS and not REDIS_URL:
    _fail("CHANNEL_REDIS_URLS needs REDIS_URL (the cache and the rate limits) set too")

if REDIS_URL:
    CACHES = {
        "default": {
            # django-redis: one client per server (no per-call client objects) and an atomic
            # increment in one round trip, which django-ratelimit counts on
            # (docs/architecture.md, "Libraries").
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="parley"),
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
                "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            },
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                # The core Redis layer loses idle consumers with redis-py 8's defaults (100
                # pooled connections; a 5 s socket timeout equal to its blocking read). The
                # pub/sub layer used here polls in short reads and was measured unaffected; the
                # generous limits are kept so switching layers cannot reintroduce the problem.
                "hosts": [
                    {"address": shard, "max_connections": 10000, "socket_timeout": 30}
                    for shard in CHANNEL_REDIS_URLS
                ],
                # Pub/sub ignores Redis database numbers: without the number in the prefix a
                # development server on /0 and a test run on /1 would hear each other.
                "prefix": env.str(
                    "CHANNEL_PREFIX",
                    default=f"parley{urlsplit(REDIS_URL).path.strip('/') or '0'}",
                ),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Auth -----------------------------------------------------------------------------------
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # The service's own name and purpose (docs/security.md, "Passwords").
    {"NAME": "accounts.passwords.ContextWordsValidator"},
]

JWT_ISSUER = env.str("JWT_ISSUER", default="parley")
JWT_AUDIENCE = env.str("JWT_AUDIENCE", default="parley")
# A float, so tests can use lifetimes of seconds (e.g. 0.4 = 24 s).
ACCESS_TOKEN_MINUTES = env.float("ACCESS_TOKEN_MINUTES", default=15)
REFRESH_TOKEN_DAYS = env.int("REFRESH_TOKEN_DAYS", default=7)
# A session (a sign-in's refresh-token family) ends this long after the sign-in however often it
# is refreshed: the absolute lifetime beside the inactivity limit of REFRESH_TOKEN_DAYS.
SESSION_MAX_DAYS = env.int("SESSION_MAX_DAYS", default=30)
SIMPLE_JWT = {
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "VERIFYING_KEY": "",
    "AUDIENCE": JWT_AUDIENCE,
    "ISSUER": JWT_ISSUER,
    "LEEWAY": 0,
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=ACCESS_TOKEN_MINUTES),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=REFRESH_TOKEN_DAYS),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "sub",
    "TOKEN_TYPE_CLAIM": "token_type",
    "JTI_CLAIM": "jti",
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
}

# --- Rate limits (django-ratelimit) ----------------------------------------------------------
RATE_LIMIT_MESSAGES = env.str("RATE_LIMIT_MESSAGES", default="10/m")
RATE_LIMIT_LOGIN = env.str("RATE_LIMIT_LOGIN", default="10/m")
RATE_LIMIT_REGISTER = env.str("RATE_LIMIT_REGISTER", default="5/m")
RATE_LIMIT_REFRESH = env.str("RATE_LIMIT_REFRESH", default="30/m")
# New conversations per customer (messaging.services.message_send): each one may become an
# escalation in the operators' queue. Sends into existing conversations are not counted here.
RATE_LIMIT_CONVERSATIONS = env.str("RATE_LIMIT_CONVERSATIONS", default="30/h")
RATELIMIT_USE_CACHE = "default"
# Client address behind proxies (config/request_context.client_ip; docs/api.md "Client IP
# behind a proxy"): RATELIMIT_TRUSTED_PROXIES proxies in front, each adding the address it saw
# to the header RATELIMIT_IP_META_KEY names (default HTTP_X_FORWARDED_FOR); the client is that
# many entries from the right. 0: REMOTE_ADDR. Naming only the header (the older setting) means
# one proxy.
RATELIMIT_IP_META_KEY = env.str("RATELIMIT_IP_META_KEY", default="") or None
RATELIMIT_TRUSTED_PROXIES = env.int(
    "RATELIMIT_TRUSTED_PROXIES", default=1 if RATELIMIT_IP_META_KEY else 0
)
# Stored security events older than this are deleted by prune_expired.
SECURITY_EVENT_RETENTION_DAYS = env.int("SECURITY_EVENT_RETENTION_DAYS", default=90)
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
SILENCED_SYSTEM_CHECKS: list[str] = []
if DEBUG and not REDIS_URL:
    # The embedded development default is one process, so a local-memory cache holds every
    # counter. In production (DEBUG=0) or with REDIS_URL the checks stay on: limits must hold
    # across worker processes, so DEBUG=0 needs REDIS_URL (and django-redis passes them).
    SILENCED_SYSTEM_CHECKS += ["django_ratelimit.E003", "django_ratelimit.W001"]

# --- Websockets -----------------------------------------------------------------------------
# Authenticated sockets one user may hold across the deployment (conversation and escalation
# sockets together; accounts/socket_slots.py). The next one is refused with close code 4429.
WS_MAX_SOCKETS_PER_USER = env.int("WS_MAX_SOCKETS_PER_USER", default=10)
if WS_MAX_SOCKETS_PER_USER < 1:
    _fail("WS_MAX_SOCKETS_PER_USER must be at least 1.")
# A socket's place is a lease renewed while it is open: a socket whose process was killed
# without closing it frees its place after at most this long.
WS_SOCKET_LEASE_SECONDS = env.float("WS_SOCKET_LEASE_SECONDS", default=60.0)
if WS_SOCKET_LEASE_SECONDS <= 0:
    _fail("WS_SOCKET_LEASE_SECONDS must be positive.")

# --- The agent ------------------------------------------------------------------------------
AGENT_BACKEND = env.str("AGENT_BACKEND", default="messaging.agent.rules.RuleBasedAgent")
AGENT_MAX_TURNS = env.int("AGENT_MAX_TURNS", default=20)
AGENT_LLM_BASE_URL = env.str("AGENT_LLM_BASE_URL", default="")
AGENT_LLM_MODEL = env.str("AGENT_LLM_MODEL", default="")
AGENT_LLM_API_KEY = env.str("AGENT_LLM_API_KEY", default="")
AGENT_LLM_TIMEOUT = env.float("AGENT_LLM_TIMEOUT", default=10.0)

# --- Webhooks and the background worker (docs/webhooks.md) -----------------------------------
# The queue of delivery attempts, behind django-tasks either way (docs/operations.md, "The
# webhook queue"). "celery": Celery 5 with REDIS_URL as the broker, a task published once its
# transaction commits, many attempts in flight per worker process -- the production queue.
# "database": django-tasks' database backend, the queue in the same database as the data (one
# attempt at a time per worker, ~25 deliveries/s): the embedded default, which has no Redis.
WEBHOOK_QUEUE = env.str("WEBHOOK_QUEUE", default="") or ("celery" if REDIS_URL else "database")
_TASK_BACKENDS = {
    "celery": "integrations.celery_queue.CeleryBackend",
    "database": "django_tasks_db.DatabaseBackend",
}
if WEBHOOK_QUEUE not in _TASK_BACKENDS:
    _fail("WEBHOOK_QUEUE must be 'celery' or 'database'")
if WEBHOOK_QUEUE == "celery" and not REDIS_URL:
    _fail("WEBHOOK_QUEUE=celery needs REDIS_URL (the broker)")
TASKS = {
    "default": {
        "BACKEND": _TASK_BACKENDS[WEBHOOK_QUEUE],
        "QUEUES": ["default", "webhooks"],
    }
}
# Delivery attempts in flight at once in one `run_worker` process with the Celery queue (its
# thread pool); each thread may hold a database connection.
WEBHOOK_WORKER_THREADS = env.int("WEBHOOK_WORKER_THREADS", default=16)
if WEBHOOK_WORKER_THREADS < 1:
    _fail("WEBHOOK_WORKER_THREADS must be at least 1")
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=30)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10)
# Only for local development and tests: lets webhooks call loopback/private addresses.
WEBHOOK_ALLOW_PRIVATE_HOSTS = env.bool("WEBHOOK_ALLOW_PRIVATE_HOSTS", default=False)
# Optional allow-list of receiver hosts (each also allows its subdomains); empty: any public host.
WEBHOOK_ALLOWED_HOSTS = [
    h.strip().lower().rstrip(".")
    for h in env.list("WEBHOOK_ALLOWED_HOSTS", default=[])
    if h.strip()
]

# --- Routing and SLAs (docs/escalations.md) ---------------------------------------------------
# manual: operators pick escalations from the queue; auto: each new escalation goes at once to
# the online operator with the fewest open assignments below their capacity.
ASSIGNMENT_MODE = env.str("ASSIGNMENT_MODE", default="manual").strip().lower()
if ASSIGNMENT_MODE not in ("manual", "auto"):
    _fail("ASSIGNMENT_MODE must be 'manual' or 'auto'.")
# Open escalations one operator holds before auto-assignment passes them by (an operator's own
# capacity, set in the admin, overrides it).
OPERATOR_CAPACITY = env.int("OPERATOR_CAPACITY", default=5)
if OPERATOR_CAPACITY < 0:
    _fail("OPERATOR_CAPACITY must be 0 or more.")
# Minutes of business time from hand-off to the first operator reply and to the resolution
# (fractions allowed; 0 sets no due time).
SLA_FIRST_RESPONSE_MINUTES = env.float("SLA_FIRST_RESPONSE_MINUTES", default=15.0)
SLA_RESOLUTION_MINUTES = env.float("SLA_RESOLUTION_MINUTES", default=480.0)
# `?sla=due_soon` and the inbox's warning colour: a due time at most this many minutes away.
SLA_DUE_SOON_MINUTES = env.float("SLA_DUE_SOON_MINUTES", default=5.0)
for _name in ("SLA_FIRST_RESPONSE_MINUTES", "SLA_RESOLUTION_MINUTES", "SLA_DUE_SOON_MINUTES"):
    if not 0 <= globals()[_name] <= 10 * 366 * 24 * 60:
        _fail(f"{_name} must be a number of minutes from 0 to ten years.")
# e.g. "mon-fri 09:00-17:00" or "mon-fri 09:00-17:00; sat 10:00-14:00"; unset: always open.
BUSINESS_HOURS = env.str("BUSINESS_HOURS", default="").strip()
BUSINESS_TIMEZONE = env.str("BUSINESS_TIMEZONE", default="UTC").strip() or "UTC"
try:
    # A pure parser (no models): a typo stops start-up here, not the first hand-off.
    from escalations.sla import InvalidBusinessHours, business_hours_parse, business_timezone

    business_hours_parse(BUSINESS_HOURS)
    business_timezone(BUSINESS_TIMEZONE)
except InvalidBusinessHours as _exc:
    _fail(f"BUSINESS_HOURS / BUSINESS_TIMEZONE: {_exc}")

# --- Retention --------------------------------------------------------------------------------
# Conversations whose last activity is older are deleted by `prune_expired`; unset keeps all.
MESSAGE_RETENTION_DAYS = env.int("MESSAGE_RETENTION_DAYS", default=None)
if MESSAGE_RETENTION_DAYS is not None and MESSAGE_RETENTION_DAYS < 1:
    _fail("MESSAGE_RETENTION_DAYS must be at least 1 (or unset to keep conversations).")

# --- Demo accounts (DEBUG only) ---------------------------------------------------------------
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="parley-demo-2026")

# --- HTTP hardening -------------------------------------------------------------------------
API_MAX_BODY_BYTES = 64 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Probes and load balancers talk plain HTTP on the private side.
    SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    # Only behind a TLS-terminating proxy that always sets this header.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_HEADERS = [
    "authorization",
    "content-type",
    "idempotency-key",
    "x-api-key",
    "x-request-id",
]
CORS_EXPOSE_HEADERS = [
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-request-id",
    "idempotent-replayed",
]

# No inline script anywhere: the chat page, the admin statistics and the API docs load scripts
# from our own static files.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- Static files -----------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:
    # No collectstatic step needed in development (and tests, which run with DEBUG unset).
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
WHITENOISE_USE_FINDERS = DEBUG
# WhiteNoise hands Django a file iterator; under ASGI Django wraps it and warns on every static
# file. Serving is correct, the warning is noise.
warnings.filterwarnings(
    "ignore", message="StreamingHttpResponse must consume synchronous iterators"
)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging: JSON lines with the request id ------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_context": {"()": "core.logging.RequestContextFilter"},
        "outage_responses": {"()": "core.logging.OutageResponseFilter"},
        "channel_layer_outages": {"()": "core.logging.ChannelLayerOutageFilter"},
    },
    "formatters": {"json": {"()": "core.logging.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Its line per 503 is left out: core.outages names each outage once (and its end).
        "django.request": {"level": "ERROR", "filters": ["outage_responses"]},
        # Its traceback a second while Redis is away becomes one outage (core.outages).
        "channels_redis.pubsub": {"filters": ["channel_layer_outages"]},
        # A warning per dropped connection and per reconnection attempt while PostgreSQL is
        # away: core.outages names the outage once instead.
        "psycopg.pool": {"level": "ERROR"},
        "django.server": {"level": "WARNING"},
        "parley.security": {"level": "INFO"},
    },
}

"""One settings module, driven by environment variables.

Local development needs no configuration at all: every value has a safe loopback default that
matches the services `scripts/devservices.py` starts, and the signing key is made at random once
per run folder (`config.secret_key`). `DJANGO_ENV=production` refuses to start without real secrets
(see `_require` and `_secret_key`).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

from config.secret_key import run_dir_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    return env(name, "1" if default else "0").strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = env(name).strip()
    return int(raw) if raw else default


def env_float(name: str, default: float) -> float:
    raw = env(name).strip()
    return float(raw) if raw else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DJANGO_ENV = env("DJANGO_ENV", "local")  # local | test | production | build
PRODUCTION = DJANGO_ENV == "production"
TESTING = DJANGO_ENV == "test"

# Keys this repository once published (their digests, never the keys): refused in every mode.
_PUBLISHED_KEY_DIGESTS = {"aac39b9e68ad529fae260fcfab3a37f76cf71f04c611f512818c2ec2ce59d45d"}


def _require(name: str, local_default: str) -> str:
    """A secret: has a default only outside production."""
    value = env(name)
    if value:
        return value
    if PRODUCTION:
        raise RuntimeError(f"{name} must be set when DJANGO_ENV=production")
    return local_default


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, or outside production the random key of the run folder (config.secret_key)."""
    value = env("DJANGO_SECRET_KEY")
    if value and hashlib.sha256(value.encode()).hexdigest() in _PUBLISHED_KEY_DIGESTS:
        raise RuntimeError("DJANGO_SECRET_KEY is a key published in this repository: unset it or use a real secret")
    if not PRODUCTION:
        # Relative to the repository, like scripts/devservices.py, which creates the run folder.
        return value or run_dir_secret_key(BASE_DIR / env("RUN_DIR", ".run"))
    if not value:
        raise RuntimeError("DJANGO_SECRET_KEY must be set when DJANGO_ENV=production")
    if len(value) < 50:
        raise RuntimeError("DJANGO_SECRET_KEY must be a real secret of at least 50 characters")
    return value


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "drf_spectacular",
    "django_prometheus",
    "django_eventstream",
    "axes",
    "common",
    "shop",
    "inventory",
    "orders",
    "payments",
    "outbox",
    "dashboard",
]

MIDDLEWARE = [
    # request counts and latency: the sale dashboard's per-second figures and the Prometheus metrics
    "common.live.middleware.LiveMetricsMiddleware",
    "common.middleware.OverloadSheddingMiddleware",  # 503 OVERLOADED for requests queued too long
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files under granian too (DEBUG=0)
    "common.middleware.DependencyErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # turns an admin login lockout into its 429 page
]
# `/api/...` in the web process: the bearer-token API reads no session or cookie (common/wsgi.py).
_SITE_ONLY = ("sessions", "csrf", "auth.middleware", "messages", "clickjacking", "axes", "whitenoise")
API_MIDDLEWARE = [m for m in MIDDLEWARE if not any(part in m for part in _SITE_ONLY)]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
APPEND_SLASH = False  # the API's paths have no trailing slash; never redirect a POST

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
            ]
        },
    }
]

# --- Database (MariaDB here, MySQL 8 in docker) -------------------------------------------
DB_LOCK_WAIT_TIMEOUT = env_int("DB_LOCK_WAIT_TIMEOUT", 3)  # seconds; retried by common.db
DATABASES = {
    "default": {
        "ENGINE": "common.db_backend",  # Django's MySQL backend, pinging only idle connections
        "HOST": env("DB_HOST", "127.0.0.1"),
        "PORT": env("DB_PORT", "3307"),
        "NAME": env("DB_NAME", "shop"),
        "USER": env("DB_USER", "shop"),
        "PASSWORD": _require("DB_PASSWORD", "shop"),
        "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {
            "charset": "utf8mb4",
            "isolation_level": "read committed",
            "connect_timeout": 3,
            "init_command": (f"SET sql_mode='STRICT_TRANS_TABLES', innodb_lock_wait_timeout={DB_LOCK_WAIT_TIMEOUT}"),
        },
        "TEST": {"NAME": env("DB_TEST_NAME", "") or None, "CHARSET": "utf8mb4"},
    }
}
# A request that waited longer than this (seconds) between nginx and the application is answered
# 503 OVERLOADED at once (common.middleware.OverloadSheddingMiddleware); 0 turns shedding off.
OVERLOAD_QUEUE_SECONDS = float(env("OVERLOAD_QUEUE_SECONDS", "3"))
# A connection used less than this long ago is not pinged before a request's first query.
DB_HEALTH_CHECK_IDLE_SECONDS = float(env("DB_HEALTH_CHECK_IDLE_SECONDS", "1"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "shop.User"

# --- Redis: caches, Celery broker, SSE fan-out ---------------------------------------------
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6380/0")
_redis = urlparse(REDIS_URL)
REDIS_HOST = _redis.hostname or "127.0.0.1"
REDIS_PORT = _redis.port or 6379
REDIS_DB = int((_redis.path or "/0").lstrip("/") or 0)
REDIS_KEY_PREFIX = env("REDIS_KEY_PREFIX", "test" if TESTING else "shop")
_REDIS_CACHE_OPTIONS = {
    "CLIENT_CLASS": "django_redis.client.DefaultClient",
    "SOCKET_CONNECT_TIMEOUT": 0.3,
    "SOCKET_TIMEOUT": 0.5,
    "CONNECTION_POOL_KWARGS": {"max_connections": 64, "health_check_interval": 10},
}
CACHES = {
    # Throttles, locks, counters: plain JSON values (never pickle).
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": REDIS_KEY_PREFIX,
        "TIMEOUT": 300,
        "OPTIONS": {**_REDIS_CACHE_OPTIONS, "SERIALIZER": "django_redis.serializers.json.JSONSerializer"},
    },
    # Cached API shapes: bytes written by our typed, versioned codecs (common.codecs).
    "typed": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{REDIS_KEY_PREFIX}:typed",
        "TIMEOUT": 300,
        "OPTIONS": {**_REDIS_CACHE_OPTIONS, "SERIALIZER": "common.codecs.BytesSerializer"},
    },
}

CELERY_BROKER_URL = env("CELERY_BROKER_URL", f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB + 1}")
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

EVENTSTREAM_REDIS = {"host": REDIS_HOST, "port": REDIS_PORT, "db": REDIS_DB}
EVENTSTREAM_STORAGE_CLASS = "common.sse.storage.StreamStorage"  # DjangoModelStorage without a connection per stream
EVENTSTREAM_CHANNELMANAGER_CLASS = "orders.flash_stock.ShopChannelManager"  # own channel + public flash-stock
# Where browsers reach the SSE stream: the API's own origin (the proxy sends /api/sse/ to the ASGI
# process), and which page origins may read the ASGI process directly on its port (CORS).
SSE_PUBLIC_URL = env("SSE_PUBLIC_URL", f"http://127.0.0.1:{env('WEB_PORT', '8000')}").rstrip("/")
SSE_ALLOWED_ORIGINS = env_list("SSE_ALLOWED_ORIGINS", "http://127.0.0.1:8000,http://localhost:8000")
SSE_TOKEN_MAX_AGE = env_int("SSE_TOKEN_MAX_AGE", 300)  # seconds a signed `?token=` may open a stream

# --- Kafka ---------------------------------------------------------------------------------
KAFKA_BOOTSTRAP_SERVERS = env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
KAFKA_TOPIC_PREFIX = env("KAFKA_TOPIC_PREFIX", "ecommerce")
KAFKA_GROUP_PREFIX = env("KAFKA_GROUP_PREFIX", "test" if TESTING else "shop")
# Consumer settings measured on tansu and Apache Kafka (see README, "Kafka settings").
KAFKA_CONSUMER_CONFIG = {
    "fetch.wait.max.ms": env_int("KAFKA_FETCH_WAIT_MAX_MS", 10),
    "session.timeout.ms": env_int("KAFKA_SESSION_TIMEOUT_MS", 6000),
    "heartbeat.interval.ms": env_int("KAFKA_HEARTBEAT_INTERVAL_MS", 1000),
}
# A consumer without messages for this long stops fetching continuously and fetches once every
# KAFKA_IDLE_FETCH_INTERVAL_MS (a message then waits up to that long): see common.kafka.runner.FetchPacer.
KAFKA_IDLE_AFTER_SECONDS = env_float("KAFKA_IDLE_AFTER_SECONDS", 5.0)
KAFKA_IDLE_FETCH_INTERVAL_MS = env_int("KAFKA_IDLE_FETCH_INTERVAL_MS", 500)
KAFKA_PRODUCE_TIMEOUT_MS = env_int("KAFKA_PRODUCE_TIMEOUT_MS", 1000)  # how long a request waits for the ack
KAFKA_MESSAGE_TIMEOUT_MS = env_int("KAFKA_MESSAGE_TIMEOUT_MS", 5000)  # how long librdkafka keeps retrying

# --- Outbox (CDC relay, consumer, fallback, purges) ------------------------------------------
# The relay's replication user. Production names its own: the relay refuses to start without it.
CDC_DB_USER = env("CDC_DB_USER", "cdc")
CDC_DB_PASSWORD = env("CDC_DB_PASSWORD") or ("" if PRODUCTION else "cdc")
# Fallback: apply events the inbox has not recorded this many seconds after their creation...
OUTBOX_FALLBACK_AFTER_SECONDS = env_int("OUTBOX_FALLBACK_AFTER_SECONDS", 30)
# ... and look this far behind its watermark again (a transaction that committed late).
OUTBOX_FALLBACK_REWIND_SECONDS = env_int("OUTBOX_FALLBACK_REWIND_SECONDS", 120)
OUTBOX_FALLBACK_BATCH = env_int("OUTBOX_FALLBACK_BATCH", 500)  # outbox rows per fallback query
# Purge: outbox rows older than this that every consumer step recorded.
OUTBOX_PURGE_AFTER_DAYS = env_int("OUTBOX_PURGE_AFTER_DAYS", 7)
# Inbox purge: processed-event records older than this. Must exceed the broker's retention of the
# events (Kafka's default is 7 days): a redelivered event whose record is gone is applied again.
OUTBOX_INBOX_RETENTION_DAYS = env_int("OUTBOX_INBOX_RETENTION_DAYS", 14)
OUTBOX_MAX_ATTEMPTS = env_int("OUTBOX_MAX_ATTEMPTS", 5)  # consumer attempts before a message is dead-lettered
# The outbox consumer's fetch wait (the checkout queue's stays KAFKA_FETCH_WAIT_MAX_MS: a shopper waits for
# its answer). 50 ms costs an event up to 50 ms and saves the broker and the consumer about 1-1.5 ms of CPU
# per checkout-and-payment pair (docs/REPORT.md, "the outbox consumer's fetch wait").
OUTBOX_FETCH_WAIT_MAX_MS = env_int("OUTBOX_FETCH_WAIT_MAX_MS", 50)
# The aggregate types whose topics (<prefix>.events.<type>) the outbox consumer reads (by name).
OUTBOX_AGGREGATE_TYPES = env_list("OUTBOX_AGGREGATE_TYPES", "order,coupon")
# Relay: replication client id (unique among the server's replicas; 0 = a random one per start).
OUTBOX_RELAY_SERVER_ID = env_int("OUTBOX_RELAY_SERVER_ID", 0)
OUTBOX_RELAY_HEARTBEAT_SECONDS = env_float("OUTBOX_RELAY_HEARTBEAT_SECONDS", 0.5)
# At most this often (while events flow) the relay saves its position: a crash republishes at most
# that much (consumers skip it); each save is itself a binlog transaction the relay reads back.
OUTBOX_RELAY_CHECKPOINT_SECONDS = env_float("OUTBOX_RELAY_CHECKPOINT_SECONDS", 1.0)
OUTBOX_RELAY_DELIVERY_TIMEOUT_MS = env_int("OUTBOX_RELAY_DELIVERY_TIMEOUT_MS", 30_000)
# How long the relay's producer waits to put more events into one record batch (docs/REPORT.md).
OUTBOX_RELAY_LINGER_MS = env_int("OUTBOX_RELAY_LINGER_MS", 10)
# Prometheus endpoints of the relay and the consumer processes (0 = none), on this address.
OUTBOX_RELAY_METRICS_PORT = env_int("OUTBOX_RELAY_METRICS_PORT", 0)
OUTBOX_CONSUMER_METRICS_PORT = env_int("OUTBOX_CONSUMER_METRICS_PORT", 0)
OUTBOX_METRICS_ADDR = env("OUTBOX_METRICS_ADDR", "127.0.0.1")
# /readyz warns when an outbox event has waited longer than this for the relay.
OUTBOX_RELAY_LAG_WARN_SECONDS = env_int("OUTBOX_RELAY_LAG_WARN_SECONDS", 30)

# --- API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "common.api.OneMediaTypeNegotiation",
    # The signed token is the identity: no user row is read per request (one query saved on every
    # call). A deactivated user keeps access until the access token expires (JWT_ACCESS_MINUTES).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "common.jwt.ShopJWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["common.api.EnvelopeRenderer"],
    "DEFAULT_PARSER_CLASSES": ["common.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "common.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "common.schema.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # One atomic Redis counter per scope and caller (common.throttling); views without a scope pay nothing.
    "DEFAULT_THROTTLE_CLASSES": ["common.throttling.ScopedRedisThrottle"],
    # How many reverse proxies in front of us append to X-Forwarded-For: 0 = ignore the header (a
    # client could write anything there); 1 behind one nginx, which appends the address it saw.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
    "DEFAULT_THROTTLE_RATES": {
        "auth": env("THROTTLE_AUTH", "600/min"),
        "coupon_issue": env("THROTTLE_COUPON_ISSUE", "120/min"),
        "queue_enqueue": env("THROTTLE_QUEUE_ENQUEUE", "120/min"),
    },
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 60)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
    "SIGNING_KEY": SECRET_KEY,
    "UPDATE_LAST_LOGIN": False,
    "TOKEN_USER_CLASS": "common.jwt.ShopTokenUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Flash-sale storefront API",
    "DESCRIPTION": (
        "Every 2xx body is `{success: true, data: ...}`; every error is `{success: false, errorCode, "
        "errorMessage, data}`. Money is integer KRW. The schema below shows the `data` payloads."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "common.schema.wrap_in_envelope",
    ],
}

# Request bodies: the JSON parser (common.parsers) refuses larger ones with 413; Django's own limit
# (for anything reading request.body, e.g. admin forms) is the same.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

# --- Business settings ---------------------------------------------------------------------
ORDER_HOLD_SECONDS = env_int("ORDER_HOLD_SECONDS", 600)
# Per-user limits against stock hoarding (orders/limits.py): unpaid orders, units held in them, and units
# of one flash-sale product across the user's unpaid and paid orders (cancelled/expired ones do not count).
MAX_OPEN_ORDERS_PER_USER = env_int("MAX_OPEN_ORDERS_PER_USER", 5)
MAX_HELD_UNITS_PER_USER = env_int("MAX_HELD_UNITS_PER_USER", 200)
FLASH_SALE_MAX_PER_USER = env_int("FLASH_SALE_MAX_PER_USER", 2)
IDEMPOTENCY_TTL_HOURS = env_int("IDEMPOTENCY_TTL_HOURS", 48)
IDEMPOTENCY_STALE_SECONDS = env_int("IDEMPOTENCY_STALE_SECONDS", 60)
DEMO_PASSWORD = env("DEMO_PASSWORD", "flashsale-demo")
# Per-process in-memory copy of decoded catalog entries (seconds); 0 turns it off (tests do).
CATALOG_NEAR_CACHE_SECONDS = float(env("CATALOG_NEAR_CACHE_SECONDS", "0" if TESTING else "1"))
QUEUE_SOLD_OUT_FLAG_SECONDS = env_int("QUEUE_SOLD_OUT_FLAG_SECONDS", 5)  # the consumer's flag re-checks this often
QUEUE_ESTIMATED_RATE = env_int("QUEUE_ESTIMATED_RATE", 1000)  # requests/s per product, for estimatedWaitSeconds
# A `POST /checkout` request still QUEUED after this long is served by the consumer's next batch, whatever its key
QUEUE_ORDER_SWEEP_SECONDS = env_int("QUEUE_ORDER_SWEEP_SECONDS", 10)

# --- Operations ----------------------------------------------------------------------------
# /metrics and the details of /readyz: requests from the loopback (REMOTE_ADDR; never a forwarded
# header) when METRICS_ALLOW_LOOPBACK, or with `Authorization: Bearer <METRICS_TOKEN>` when a token
# is set. Anyone else gets 403 from /metrics and only the status from /readyz. A reverse proxy on the
# same host must not pass /metrics through (docker/nginx/nginx.conf answers 404 for it).
METRICS_ALLOW_LOOPBACK = env_bool("METRICS_ALLOW_LOOPBACK", True)
METRICS_TOKEN = env("METRICS_TOKEN")
if PRODUCTION and METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise RuntimeError("METRICS_TOKEN must be at least 32 characters")
# The checkout consumer's own /metrics (queue answers), for Prometheus; 0 = not served.
CHECKOUT_CONSUMER_METRICS_PORT = env_int("CHECKOUT_CONSUMER_METRICS_PORT", 0)
CHECKOUT_CONSUMER_METRICS_ADDR = env("CHECKOUT_CONSUMER_METRICS_ADDR", "127.0.0.1")

# --- The rest ------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "Asia/Seoul")
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Front-end libraries installed from npm by `make` (package.json, pinned in package-lock.json).
_UPLOT_DIST = BASE_DIR / "node_modules" / "uplot" / "dist"
STATICFILES_DIRS = [("vendor/uplot", _UPLOT_DIST)] if _UPLOT_DIST.is_dir() else []
# WhiteNoise serves static files from the apps and STATICFILES_DIRS directly (no collectstatic
# needed for `make run`); in docker, nginx serves the collected copy.
WHITENOISE_USE_FINDERS = True
warnings.filterwarnings("ignore", message="No directory at: .*staticfiles")  # STATIC_ROOT: docker only
RUN_DIR = Path(env("RUN_DIR", str(BASE_DIR / ".run"))).resolve()

if TESTING:  # fast hashing for the thousands of users tests create; never used outside tests
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# /admin/login/ brute-force protection (django-axes; common.admin_login): after AXES_FAILURE_LIMIT
# wrong passwords from one client address, that address is refused (429) for AXES_COOLOFF_TIME,
# even with the right password. The address is the throttles' (NUM_PROXIES rule). Reset:
# `manage.py axes_reset` (all) or `axes_reset_ip <address>`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "common.admin_login.AdminLoginHandler"
AXES_ONLY_ADMIN_SITE = True
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ADMIN_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "common.throttling.client_ip"
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
DEMO_ADMIN_PASSWORD = env("DEMO_ADMIN_PASSWORD", "admin-demo-password")

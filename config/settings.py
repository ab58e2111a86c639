"""One settings module, driven by environment variables.

Local development needs no configuration at all: every value has a safe loopback default that
matches the services `scripts/devservices.py` starts. `DJANGO_ENV=production` refuses to start
without real secrets (see `_require`).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    return env(name, "1" if default else "0").strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(env(name, str(default)))


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DJANGO_ENV = env("DJANGO_ENV", "local")  # local | test | production | build
PRODUCTION = DJANGO_ENV == "production"
TESTING = DJANGO_ENV == "test"

_LOCAL_SECRET = "local-development-secret-key-not-for-production-use-0123456789"


def _require(name: str, local_default: str) -> str:
    """A secret: has a default only outside production."""
    value = env(name)
    if value:
        return value
    if PRODUCTION:
        raise RuntimeError(f"{name} must be set when DJANGO_ENV=production")
    return local_default


SECRET_KEY = _require("DJANGO_SECRET_KEY", _LOCAL_SECRET)
if PRODUCTION and (SECRET_KEY == _LOCAL_SECRET or len(SECRET_KEY) < 50):
    raise RuntimeError("DJANGO_SECRET_KEY must be a real secret of at least 50 characters")
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
    "common",
    "shop",
    "inventory",
    "orders",
    "payments",
    "outbox",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "common.middleware.DependencyErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

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
        "ENGINE": "django_prometheus.db.backends.mysql",
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
CELERY_BEAT_SCHEDULE: dict = {}  # each app adds its periodic tasks in config/celery.py

EVENTSTREAM_REDIS = {"host": REDIS_HOST, "port": REDIS_PORT, "db": REDIS_DB}
EVENTSTREAM_STORAGE_CLASS = "common.sse.StreamStorage"  # DjangoModelStorage without a connection per stream
EVENTSTREAM_CHANNELMANAGER_CLASS = "common.sse.UserChannelManager"
# Where browsers reach the ASGI SSE process, and which page origins may read it (CORS).
SSE_PUBLIC_URL = env("SSE_PUBLIC_URL", "http://127.0.0.1:8001").rstrip("/")
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
KAFKA_PRODUCE_TIMEOUT_MS = env_int("KAFKA_PRODUCE_TIMEOUT_MS", 1000)  # how long a request waits for the ack
KAFKA_MESSAGE_TIMEOUT_MS = env_int("KAFKA_MESSAGE_TIMEOUT_MS", 5000)  # how long librdkafka keeps retrying

# --- API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # The signed token is the identity: no user row is read per request (one query saved on every
    # call). A deactivated user keeps access until the access token expires (JWT_ACCESS_MINUTES).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTStatelessUserAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["common.api.EnvelopeRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "common.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "common.schema.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.ScopedRateThrottle"],
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

# --- The rest ------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "Asia/Seoul")
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
RUN_DIR = Path(env("RUN_DIR", str(BASE_DIR / ".run"))).resolve()

if TESTING:  # fast hashing for the thousands of users tests create; never used outside tests
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

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

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The one list of periodic work (run by exactly one `celery beat`).
app.conf.beat_schedule = {
    "expire-due-orders": {"task": "orders.tasks.expire_due_orders", "schedule": 15.0},
    "outbox-fallback": {"task": "outbox.tasks.outbox_fallback", "schedule": 60.0},
    "outbox-purge": {"task": "outbox.tasks.outbox_purge", "schedule": 3600.0},
    "popular-prewarm": {"task": "shop.tasks.popular_prewarm", "schedule": 60.0},
    "idempotency-purge": {"task": "common.tasks.idempotency_purge", "schedule": 3600.0},
    "invariant-audit": {"task": "common.tasks.audit", "schedule": 60.0},  # last result: sale dashboard
}

"""Celery beat gets the periodic tasks config/celery.py declares (a `CELERY_BEAT_SCHEDULE` in the
settings used to replace them with nothing: beat ran no task at all), and each names a real task."""

from config.celery import app

PERIODIC = {
    "expire-due-orders",
    "outbox-fallback",
    "outbox-purge",
    "popular-prewarm",
    "idempotency-purge",
    "invariant-audit",
}


def test_beat_schedules_every_periodic_task_and_each_is_registered():
    schedule = app.conf.beat_schedule
    assert set(schedule) == PERIODIC
    app.loader.import_default_modules()  # the apps' tasks modules, as a worker imports them
    assert {entry["task"] for entry in schedule.values()} <= set(app.tasks)

"""Periodic catalog work (scheduled in config/celery.py)."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import caches

from shop.selectors.catalog import POPULAR_LOCK, POPULAR_LOCK_SECONDS, popular_refresh


@shared_task(name="shop.tasks.popular_prewarm")
def popular_prewarm() -> int:
    """Rebuild the popular list before its entry expires, so storefront readers never miss.

    Skipped when a reader is rebuilding it at this moment. Returns the number of items, or -1.
    """
    lock = caches["default"]
    if not lock.add(POPULAR_LOCK, 1, timeout=POPULAR_LOCK_SECONDS):
        return -1
    try:
        return len(popular_refresh())
    finally:
        lock.delete(POPULAR_LOCK)

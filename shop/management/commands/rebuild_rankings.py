"""Recompute the Redis ranking sets from the SalesDaily table (after a Redis loss, or to repair drift)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from shop import rankings
from shop.caches import sales_caches_invalidate


class Command(BaseCommand):
    help = "Rebuild the daily/weekly/total sales rankings in Redis from the SalesDaily table."

    def handle(self, *args, **options):
        stats = rankings.rebuild()
        sales_caches_invalidate()
        self.stdout.write(
            self.style.SUCCESS(
                f"rankings rebuilt: {stats.daily_sets} daily sets with sales, {stats.members} products ranked in total"
            )
        )

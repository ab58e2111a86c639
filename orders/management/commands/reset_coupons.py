"""Put coupons back to "nothing issued" before a coupon-rush load test (never in production).

Deletes the coupons' `UserCoupon` rows that no order points at (rows an order references are kept
and still counted), sets `issued_quantity` to what is left, re-opens the validity window if asked,
and clears the Redis sold-out flags.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from common.cli import parse_ids
from orders.models import Order
from shop.models import Coupon, UserCoupon
from shop.services.coupons import coupon_sold_out_flag_clear


class Command(BaseCommand):
    help = "manage.py reset_coupons --ids 1-10 [--reopen]: forget the issues of these coupons (load tests)."

    def add_arguments(self, parser):
        parser.add_argument("--ids", default="1-10", help="coupon ids, e.g. 1-3,9,10 (default 1-10)")
        parser.add_argument("--reopen", action="store_true", help="also make them valid from now-1d to now+30d")

    def handle(self, *args, ids: str, reopen: bool, **options):
        if settings.PRODUCTION:
            raise CommandError("reset_coupons is for local and load-test databases only")
        coupon_ids = parse_ids(ids)
        with transaction.atomic():
            coupons = list(Coupon.objects.select_for_update().filter(pk__in=coupon_ids).order_by("pk"))
            in_orders = Order.objects.filter(user_coupon__coupon_id__in=coupon_ids).values("user_coupon_id")
            deleted, _ = UserCoupon.objects.filter(coupon_id__in=coupon_ids).exclude(pk__in=in_orders).delete()
            for coupon in coupons:
                coupon.issued_quantity = UserCoupon.objects.filter(coupon=coupon).count()
                fields = ["issued_quantity"]
                if reopen:
                    now = timezone.now()
                    coupon.valid_from, coupon.valid_to = now - timedelta(days=1), now + timedelta(days=30)
                    fields += ["valid_from", "valid_to"]
                coupon.save(update_fields=fields)
        coupon_sold_out_flag_clear(coupon_ids=coupon_ids)
        summary = ", ".join(f"#{c.pk} {c.issued_quantity}/{c.total_quantity}" for c in coupons)
        self.stdout.write(self.style.SUCCESS(f"deleted {deleted} user coupons; issued now: {summary}"))

"""Expire every unpaid order of some users now, before a load run (never in production).

A load scenario's users keep the unpaid orders of an earlier run for ORDER_HOLD_SECONDS, and the
per-user limits (orders/limits.py) count them: a run would start with users refused at once
(TOO_MANY_OPEN_ORDERS, HELD_UNITS_LIMIT). Each order is expired exactly as the operator's "force
expire" does (`order_force_expire`: stock released, coupon returned, OrderExpired), so invariants hold.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from common.cli import parse_ids
from orders.errors import InvalidTransition
from orders.models import Order, OrderStatus
from orders.services import order_force_expire


class Command(BaseCommand):
    help = "manage.py expire_unpaid --users 1-1000: expire these users' unpaid orders now (load tests)."

    def add_arguments(self, parser):
        parser.add_argument("--users", default="1-1000", help="user ids, e.g. 1-1000 (default 1-1000)")

    def handle(self, *args, **options):
        users = parse_ids(options["users"], option="--users")
        unpaid = Order.objects.filter(user_id__in=users, status=OrderStatus.PENDING_PAYMENT).order_by("pk")
        expired = 0
        for order_id in unpaid.values_list("pk", flat=True).iterator(chunk_size=1000):
            try:
                order_force_expire(order_id=order_id)
            except InvalidTransition:  # paid, cancelled or expired by the running stack meanwhile
                continue
            expired += 1
        self.stdout.write(f"expired {expired} unpaid order(s) of {len(users)} user(s)")

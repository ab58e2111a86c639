"""Operator/bench tool: make `--available` units available on a range of products.

Sets quantity = reserved_quantity + available (so live reservations stay valid) and bumps the version.
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import F

from inventory.models import Stock


class Command(BaseCommand):
    help = "manage.py restock --products 1-5 --available 5000"

    def add_arguments(self, parser):
        parser.add_argument("--products", required=True, help="an id range a-b")
        parser.add_argument("--available", type=int, required=True)

    def handle(self, *args, products, available, **opts):
        try:
            low, high = (int(p) for p in products.split("-", 1))
        except ValueError:
            raise CommandError("--products must look like 1-5") from None
        if available < 0:
            raise CommandError("--available must be >= 0")
        with transaction.atomic():
            rows = list(
                Stock.objects.select_for_update().filter(product_id__gte=low, product_id__lte=high).order_by("pk")
            )
            for stock in rows:
                Stock.objects.filter(pk=stock.pk).update(
                    quantity=F("reserved_quantity") + available, version=F("version") + 1
                )
        self.stdout.write(f"{len(rows)} stock rows now have {available} available units")

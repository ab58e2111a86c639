"""Operator/bench tool: make `--available` units available on a range of products.

Sets quantity = reserved_quantity + available (so live reservations stay valid) through
`inventory.services.stock_set_available` (rows locked, version bumped).
"""

from django.core.management.base import BaseCommand, CommandError

from inventory.services import stock_set_available


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
        rows = stock_set_available(product_ids=range(low, high + 1), available=available)
        self.stdout.write(f"{rows} stock rows now have {available} available units")

"""Operator/bench tool: make `--available` units available on a range of products.

Sets quantity = reserved_quantity + available (so live reservations stay valid) through
`inventory.services.stock_set_available` (rows locked, version bumped).
"""

from django.core.management.base import BaseCommand, CommandError

from common.cli import parse_ids
from inventory.services import stock_set_available


class Command(BaseCommand):
    help = "manage.py restock --products 1-5 --available 5000"

    def add_arguments(self, parser):
        parser.add_argument("--products", required=True, help="product ids, e.g. 1-5 or 1-3,9")
        parser.add_argument("--available", type=int, required=True)

    def handle(self, *args, products, available, **opts):
        product_ids = parse_ids(products, option="--products")
        if available < 0:
            raise CommandError("--available must be >= 0")
        rows = stock_set_available(product_ids=product_ids, available=available)
        self.stdout.write(f"{rows} stock rows now have {available} available units")

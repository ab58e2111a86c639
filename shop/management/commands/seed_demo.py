"""Demo data for local runs and load tests. Idempotent: creates only what is missing.

Users 1..N (`user<i>`, password settings.DEMO_PASSWORD) and a local admin; categories 1..10;
products 1..100 (1..5 flash-sale with small stock, the rest normal); a points balance per user;
coupons 1..10 (1..3: 100 each, 4..8 plentiful, 9: 10, 10: 5; valid now); some past sales so the
popular list is not empty.
"""

from __future__ import annotations

import random
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from inventory.models import Stock
from shop.models import Category, Coupon, PointHistory, PointWallet, Product, SalesDaily, User

CATEGORIES = ["Electronics", "Fashion", "Home", "Beauty", "Sports", "Books", "Food", "Toys", "Garden", "Pets"]
COUPONS = {  # id: (name, type, value, minimum, max discount, quantity)
    1: ("Flash 5,000 off", "FIXED", 5_000, 20_000, None, 100),
    2: ("Flash 10% off", "PERCENTAGE", 10, 10_000, 20_000, 100),
    3: ("Flash 3,000 off", "FIXED", 3_000, 0, None, 100),
    4: ("Welcome 1,000 off", "FIXED", 1_000, 0, None, 1_000_000),
    5: ("Weekend 5% off", "PERCENTAGE", 5, 0, 10_000, 1_000_000),
    6: ("Big basket 10,000 off", "FIXED", 10_000, 100_000, None, 1_000_000),
    7: ("Members 7% off", "PERCENTAGE", 7, 30_000, 15_000, 1_000_000),
    8: ("Free wrap 2,000 off", "FIXED", 2_000, 0, None, 1_000_000),
    9: ("Golden ticket 50% off", "PERCENTAGE", 50, 0, 50_000, 10),
    10: ("Platinum 30,000 off", "FIXED", 30_000, 50_000, None, 5),
}


class Command(BaseCommand):
    help = "Create demo data (idempotent: only what is missing)."

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=1000)
        parser.add_argument("--products", type=int, default=100)
        parser.add_argument("--flash-products", type=int, default=5)
        parser.add_argument("--flash-stock", type=int, default=100)
        parser.add_argument("--stock", type=int, default=10_000)
        parser.add_argument("--balance", type=int, default=1_000_000)
        parser.add_argument("--no-sales", action="store_true", help="skip the past sales")

    def handle(self, *args, **opts):
        if settings.PRODUCTION:  # users and an admin with well-known passwords: never in production
            raise CommandError("seed_demo creates accounts with known passwords; refused when DJANGO_ENV=production")
        self.seed_users(opts["users"])
        self.seed_catalog(opts["products"], opts["flash_products"], opts["flash_stock"], opts["stock"])
        self.seed_wallets(opts["users"], opts["balance"])
        self.seed_coupons()
        if not opts["no_sales"]:
            self.seed_sales(opts["products"])
        self.stdout.write(
            self.style.SUCCESS(
                f"demo data ready: {User.objects.count()} users, {Product.objects.count()} products, "
                f"{Coupon.objects.count()} coupons (password for user1..: {settings.DEMO_PASSWORD!r})"
            )
        )

    def seed_users(self, count: int) -> None:
        existing = set(User.objects.filter(pk__lte=count).values_list("pk", flat=True))
        missing = [i for i in range(1, count + 1) if i not in existing]
        if missing:
            template = User()
            template.set_password(settings.DEMO_PASSWORD)  # hash once, share: seeding stays fast
            for start in tqdm(range(0, len(missing), 500), desc="users", disable=len(missing) < 2000):
                User.objects.bulk_create(
                    [
                        User(
                            id=i,
                            username=f"user{i}",
                            email=f"user{i}@example.com",
                            name=f"User {i}",
                            password=template.password,
                        )
                        for i in missing[start : start + 500]
                    ],
                    ignore_conflicts=True,
                )
        if not User.objects.filter(username="admin").exists():
            admin = User(username="admin", email="admin@example.com", name="Operator", is_staff=True, is_superuser=True)
            admin.set_password(settings.DEMO_ADMIN_PASSWORD)
            admin.save()
        self._fix_auto_increment(User)

    def seed_catalog(self, count: int, flash: int, flash_stock: int, stock: int) -> None:
        Category.objects.bulk_create(
            [Category(id=i, name=name) for i, name in enumerate(CATEGORIES, start=1)], ignore_conflicts=True
        )
        rng = random.Random(42)
        products = []
        for i in range(1, count + 1):
            is_flash = i <= flash
            products.append(
                Product(
                    id=i,
                    name=f"{'[FLASH] ' if is_flash else ''}{CATEGORIES[(i - 1) % 10]} item {i}",
                    description=f"Demo product {i}.",
                    price=rng.randrange(5, 200) * 1_000,
                    category_id=(i - 1) % 10 + 1,
                    is_flash_sale=is_flash,
                )
            )
        Product.objects.bulk_create(products, ignore_conflicts=True)
        Stock.objects.bulk_create(
            [Stock(product_id=i, quantity=flash_stock if i <= flash else stock) for i in range(1, count + 1)],
            ignore_conflicts=True,
        )
        self._fix_auto_increment(Category)
        self._fix_auto_increment(Product)

    def seed_wallets(self, users: int, balance: int) -> None:
        have = set(PointWallet.objects.filter(user_id__lte=users).values_list("user_id", flat=True))
        missing = [i for i in range(1, users + 1) if i not in have]
        for start in range(0, len(missing), 1000):
            chunk = missing[start : start + 1000]
            with transaction.atomic():
                PointWallet.objects.bulk_create([PointWallet(user_id=i, balance=balance) for i in chunk])
                PointHistory.objects.bulk_create(
                    [
                        PointHistory(
                            user_id=i,
                            amount=balance,
                            type=PointHistory.Type.CHARGE,
                            balance_after=balance,
                            description="demo balance",
                        )
                        for i in chunk
                    ]
                )

    def seed_coupons(self) -> None:
        now = timezone.now()
        Coupon.objects.bulk_create(
            [
                Coupon(
                    id=i,
                    name=name,
                    discount_type=kind,
                    discount_value=value,
                    minimum_order_amount=minimum,
                    max_discount_amount=cap,
                    total_quantity=qty,
                    valid_from=now - timedelta(days=1),
                    valid_to=now + timedelta(days=30),
                )
                for i, (name, kind, value, minimum, cap, qty) in COUPONS.items()
            ],
            ignore_conflicts=True,
        )
        self._fix_auto_increment(Coupon)

    def seed_sales(self, products: int) -> None:
        if SalesDaily.objects.exists():
            return
        rng = random.Random(7)
        today = timezone.localdate()
        SalesDaily.objects.bulk_create(
            [
                SalesDaily(product_id=pid, day=today - timedelta(days=d), quantity=rng.randrange(1, 60))
                for d in range(0, 7)
                for pid in rng.sample(range(1, products + 1), k=min(30, products))
            ],
            ignore_conflicts=True,
        )

    @staticmethod
    def _fix_auto_increment(model) -> None:
        """Explicit ids do not move MariaDB's counter past them in every case; make sure they do."""
        from django.db import connection
        from django.db.models import Max

        top = model.objects.aggregate(m=Max("pk"))["m"] or 0
        table = model._meta.db_table
        with connection.cursor() as cursor:
            # Only when needed: an ALTER TABLE on a table the running stack writes to waits for its
            # metadata lock and can end in a deadlock (seen when `make bench` reseeded during a backlog).
            cursor.execute(
                "SELECT AUTO_INCREMENT FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                [table],
            )
            row = cursor.fetchone()
            if row is not None and row[0] is not None and row[0] > top:
                return
            cursor.execute(f"ALTER TABLE {table} AUTO_INCREMENT = {top + 1}")

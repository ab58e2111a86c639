"""Orders per second on one hot product: the queue consumer vs the synchronous checkout.

    manage.py bench_queue [--units 10000] [--requests 10000] [--sync-threads 16] [--runs 3]

Each run, in a throw-away database (`bench_queue`, dropped at the end unless --keep-db), on the
same machine and database:
- queue: N claims are inserted as the web would (not timed), a real `run_consumer checkout` child is
  running on a topic of its own, then N request messages are produced keyed `product:<id>`;
  time = from the first message produced to the `completed_at` of the last request row.
- sync: `checkout_initiate` (the `/checkout/initiate` use case, one stock lock per order) from
  `--sync-threads` threads, for N orders of another product with the same units; time = first call
  to last return.
Prints each run and the medians; `--out` also writes them as JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from confluent_kafka import Producer
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand
from django.db import connection
from django.db.models import Max
from django.test.utils import override_settings

from common.errors import DomainError
from common.kafka import ensure_topics, topic
from inventory.models import Stock
from orders.models import QueueRequest
from orders.queue.admission import queue_request_enqueue
from orders.queue.keys import QUEUE_TOPIC
from orders.services import LineRequest, checkout_initiate
from shop.models import Category, PointWallet, Product, User

BENCH_DB = "bench_queue"
REPO = Path(settings.BASE_DIR)


class Command(BaseCommand):
    help = "Benchmark: orders/s through the queue consumer vs the synchronous checkout (one hot product)."

    def add_arguments(self, parser):
        parser.add_argument("--units", type=int, default=10_000, help="stock of the hot product")
        parser.add_argument("--requests", type=int, default=10_000, help="requests (users) per path")
        parser.add_argument("--sync-threads", type=int, default=16)
        parser.add_argument("--runs", type=int, default=3)
        parser.add_argument("--keep-db", action="store_true", help=f"keep the {BENCH_DB!r} database")
        parser.add_argument("--out", help="also write the results to this JSON file")

    def handle(self, *args, **opts):
        # Redis keys of our own too: bench product ids would otherwise share flags with the dev database's
        prefix = f"{settings.REDIS_KEY_PREFIX}:bench"
        caches = {
            alias: {**config, "KEY_PREFIX": f"{prefix}{config['KEY_PREFIX'][len(settings.REDIS_KEY_PREFIX) :]}"}
            for alias, config in settings.CACHES.items()
        }
        with override_settings(CACHES=caches, REDIS_KEY_PREFIX=prefix):
            self.bench(**opts)

    def bench(self, *, units, requests, sync_threads, runs, keep_db, out, **opts):
        connection.settings_dict["TEST"] = {**connection.settings_dict.get("TEST", {}), "NAME": BENCH_DB}
        old_name = connection.settings_dict["NAME"]
        self.stdout.write(f"preparing database {BENCH_DB} ...")
        connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=True, serialize=False)
        try:
            users = self.bench_users(requests)
            results = []
            for run in range(1, runs + 1):
                queue = self.run_queue(users, units)
                sync = self.run_sync(users, units, sync_threads)
                ratio = queue["ordersPerSecond"] / sync["ordersPerSecond"]
                results.append({"run": run, "queue": queue, "sync": sync, "ratio": round(ratio, 2)})
                self.stdout.write(
                    f"run {run}: queue {queue['orders']} orders in {queue['seconds']:.2f} s = "
                    f"{queue['ordersPerSecond']:,.0f}/s | sync {sync['orders']} orders in {sync['seconds']:.2f} s "
                    f"= {sync['ordersPerSecond']:,.0f}/s | ratio {ratio:.1f}x"
                )
            summary = {
                "units": units,
                "requests": requests,
                "syncThreads": sync_threads,
                "runs": results,
                "median": {
                    "queueOrdersPerSecond": round(statistics.median(r["queue"]["ordersPerSecond"] for r in results)),
                    "syncOrdersPerSecond": round(statistics.median(r["sync"]["ordersPerSecond"] for r in results)),
                    "ratio": round(statistics.median(r["ratio"] for r in results), 2),
                },
            }
            m = summary["median"]
            self.stdout.write(
                self.style.SUCCESS(
                    f"median of {runs}: queue {m['queueOrdersPerSecond']:,}/s, sync {m['syncOrdersPerSecond']:,}/s, "
                    f"ratio {m['ratio']}x (goal: >= 3x and >= 2,000/s)"
                )
            )
            if out:
                Path(out).parent.mkdir(parents=True, exist_ok=True)
                Path(out).write_text(json.dumps(summary, indent=2))
        finally:
            if not keep_db:
                connection.creation.destroy_test_db(old_name, verbosity=0)

    # --- setup ----------------------------------------------------------------------------------

    def bench_users(self, count: int) -> list[int]:
        have = User.objects.filter(username__startswith="bench-").count()
        if have < count:
            password = make_password("bench-password")
            User.objects.bulk_create(
                [
                    User(username=f"bench-{i}", email=f"bench-{i}@example.com", name=f"Bench {i}", password=password)
                    for i in range(have, count)
                ],
                batch_size=2000,
            )
        ids = list(User.objects.filter(username__startswith="bench-").order_by("pk").values_list("pk", flat=True))
        PointWallet.objects.bulk_create(
            [PointWallet(user_id=i, balance=10_000_000) for i in ids], ignore_conflicts=True, batch_size=2000
        )
        return ids[:count]

    def hot_product(self, units: int, *, flash: bool) -> Product:
        category, _ = Category.objects.get_or_create(name="Bench")
        product = Product.objects.create(
            name=f"Bench {uuid.uuid4().hex[:6]}", price=1_000, category=category, is_flash_sale=flash
        )
        Stock.objects.create(product=product, quantity=units)
        return product

    # --- the queue path -------------------------------------------------------------------------

    def run_queue(self, users: list[int], units: int) -> dict:
        prefix = f"bench_{uuid.uuid4().hex[:10]}"
        with override_settings(KAFKA_TOPIC_PREFIX=prefix):
            name = topic(QUEUE_TOPIC)
            ensure_topics([name])
            consumer = self.start_consumer(prefix)
            try:
                self.warm_up(users[0])
                product = self.hot_product(units, flash=True)
                claims = [
                    QueueRequest(
                        request_id=uuid.uuid4(), user_id=user_id, product=product, quantity=1, queue_position=i + 1
                    )
                    for i, user_id in enumerate(users)
                ]
                QueueRequest.objects.bulk_create(claims, batch_size=2000)
                producer = Producer(
                    {
                        "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
                        "acks": "all",
                        "enable.idempotence": True,
                        "linger.ms": 5,
                    }
                )
                key = f"product:{product.pk}"
                started = time.time()
                for claim in claims:
                    producer.produce(
                        name,
                        key=key,
                        value=json.dumps(
                            {"type": "request", "requestId": str(claim.request_id), "productId": product.pk}
                        ).encode(),
                    )
                    producer.poll(0)
                producer.flush(30)
                self.wait(
                    lambda: not QueueRequest.objects.filter(product=product, status="QUEUED").exists(),
                    timeout=300,
                    what="the consumer",
                    consumer=consumer,
                )
                last = QueueRequest.objects.filter(product=product).aggregate(last=Max("completed_at"))["last"]
            finally:
                consumer.terminate()
                consumer.wait(15)
        seconds = last.timestamp() - started
        orders = QueueRequest.objects.filter(product=product, status="COMPLETED").count()
        return {"orders": orders, "seconds": round(seconds, 3), "ordersPerSecond": round(orders / seconds, 1)}

    def start_consumer(self, prefix: str) -> subprocess.Popen:
        env = {
            **os.environ,
            "DB_NAME": BENCH_DB,
            "KAFKA_TOPIC_PREFIX": prefix,
            "LOG_LEVEL": "WARNING",
            "KAFKA_GROUP_PREFIX": prefix,
            "KAFKA_SESSION_TIMEOUT_MS": "3000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "500",
            "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
        }
        return subprocess.Popen(
            [sys.executable, "manage.py", "run_consumer", "checkout"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sys.stderr,
        )

    def warm_up(self, user_id: int) -> None:
        """One real request through the web path, answered: the consumer is assigned and connected."""
        product = self.hot_product(2, flash=True)
        request = queue_request_enqueue(user_id=user_id, product_id=product.pk).request
        self.wait(
            lambda: QueueRequest.objects.filter(pk=request.pk).exclude(status="QUEUED").exists(),
            timeout=60,
            what="the warm-up request",
        )

    def wait(self, condition, *, timeout: float, what: str, consumer: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline or (consumer is not None and consumer.poll() is not None):
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.02)

    # --- the synchronous path -------------------------------------------------------------------

    def run_sync(self, users: list[int], units: int, threads: int) -> dict:
        product = self.hot_product(units, flash=False)

        def buy(user_id: int) -> bool:
            try:
                checkout_initiate(user_id=user_id, direct_items=[LineRequest(product.pk, 1)])
                return True
            except DomainError:
                return False

        def worker(chunk: list[int]) -> int:
            try:
                return sum(buy(user_id) for user_id in chunk)
            finally:
                connection.close()

        chunks = [users[i::threads] for i in range(threads)]
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            orders = sum(pool.map(worker, chunks))
        seconds = time.monotonic() - started
        return {"orders": orders, "seconds": round(seconds, 3), "ordersPerSecond": round(orders / seconds, 1)}

"""Shoppers for fault tests: real HTTP clients that retry like a careful storefront would (same
Idempotency-Key, after a dropped connection, a 503 or an in-flight key) and remember every id the
server gave them, so the test can compare what clients were told with what the database holds.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

RETRY_STATUSES = {502, 503}
RETRY_CODES = {"IDEMPOTENCY_KEY_IN_FLIGHT"}


@dataclass
class Answer:
    status: int  # 0: no answer at all (connection refused or dropped)
    body: dict[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def data(self) -> Any:
        return self.body.get("data")

    @property
    def code(self) -> str | None:
        return self.body.get("errorCode")


class Api:
    def __init__(self, url: str, token: str | None = None, timeout: float = 10.0):
        self.url = url
        self.session = requests.Session()
        self.timeout = timeout
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: Any = None, *, key: str | None = None) -> Answer:
        headers = {"Idempotency-Key": key} if key else {}
        try:
            response = self.session.request(
                method, f"{self.url}/api/v1{path}", json=body, headers=headers, timeout=self.timeout
            )
        except requests.RequestException:
            return Answer(0)
        try:
            payload = response.json()
        except ValueError:
            payload = {"raw": response.text[:300]}
        return Answer(response.status_code, payload, response.headers)  # case-insensitive, as HTTP is

    def retried(self, method: str, path: str, body: Any = None, *, attempts: int = 80, pause: float = 0.25) -> Answer:
        """Retry with the same Idempotency-Key until a definitive answer (what a client must do)."""
        key = str(uuid.uuid4())
        answer = Answer(0)
        self.history: list[tuple[float, int, str | None]] = []
        for _ in range(attempts):
            answer = self.call(method, path, body, key=key)
            self.history.append((round(time.time(), 2), answer.status, answer.code))
            if answer.status and answer.status not in RETRY_STATUSES and answer.code not in RETRY_CODES:
                return answer
            time.sleep(pause)
        return answer


@dataclass
class Seen:
    """What the server told the clients (shared by all shopper threads)."""

    orders: set[int] = field(default_factory=set)
    payments: set[int] = field(default_factory=set)
    paid_orders: set[int] = field(default_factory=set)
    user_coupons: set[int] = field(default_factory=set)
    queue_requests: set[str] = field(default_factory=set)
    statuses: Counter = field(default_factory=Counter)
    unanswered: int = 0
    retried: Counter = field(default_factory=Counter)  # (status, code) of attempts that were retried
    queue_log: list[tuple] = field(default_factory=list)  # (user, request id, attempts) for diagnostics
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, what: str, answer: Answer, history: list[tuple[float, int, str | None]] = ()) -> None:
        """A call's final answer; `history` (every attempt) counts the answers that were retried."""
        with self.lock:
            self.statuses[(what, answer.status, answer.code)] += 1
            if answer.status == 0:
                self.unanswered += 1
            for _, status, code in history[:-1]:
                self.retried[(status, code)] += 1

    def server_errors(self) -> dict:
        return {k: n for k, n in self.statuses.items() if k[1] >= 500 and k[1] not in RETRY_STATUSES}


class Shopper(threading.Thread):
    """One user: checkout (topping up the wallet when it runs dry), pay, now and then issue a coupon
    and queue for a flash-sale product."""

    def __init__(self, url: str, user_id: int, token: str, seen: Seen, stop: threading.Event, seed: int):
        super().__init__(daemon=True, name=f"shopper-{user_id}")
        self.api = Api(url, token)
        self.user_id = user_id
        self.seen = seen
        self.stop = stop
        self.random = random.Random(seed)
        self.rounds = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.rounds += 1
            self.checkout_and_pay()
            if self.rounds % 3 == 1:
                self.issue_coupon()
            if self.rounds % 4 == 1:
                self.queue()

    def checkout_and_pay(self) -> None:
        line = {"productId": self.random.randint(6, 100), "quantity": 1}
        answer = self.api.retried("POST", "/checkout/initiate", {"directOrderItems": [line]})
        self.seen.note("checkout", answer, self.api.history)
        if answer.code == "INSUFFICIENT_BALANCE":  # what the storefront does: top up, then try again
            charged = self.api.retried("POST", f"/points/{self.user_id}/charge", {"amount": 1_000_000})
            self.seen.note("charge", charged, self.api.history)
            answer = self.api.retried("POST", "/checkout/initiate", {"directOrderItems": [line]})
            self.seen.note("checkout", answer, self.api.history)
        if answer.status != 200:
            return
        order = answer.data
        with self.seen.lock:
            self.seen.orders.add(order["orderId"])
        paid = self.api.retried(
            "POST", "/payments/process", {"orderId": order["orderId"], "amount": order["finalAmount"]}
        )
        self.seen.note("payment", paid, self.api.history)
        if paid.status == 200:
            with self.seen.lock:
                self.seen.payments.add(paid.data["id"])
                self.seen.paid_orders.add(order["orderId"])

    def issue_coupon(self) -> None:
        answer = self.api.retried("POST", "/coupons/issue", {"couponId": self.random.randint(1, 10)})
        self.seen.note("coupon", answer, self.api.history)
        if answer.status == 200:
            with self.seen.lock:
                self.seen.user_coupons.add(answer.data["userCouponId"])

    def queue(self) -> None:
        answer = self.api.retried("POST", "/checkout/queue", {"productId": self.random.randint(1, 5)})
        self.seen.note("queue", answer, self.api.history)
        request_id = (answer.data or {}).get("requestId") if answer.status in (202, 409) else None
        with self.seen.lock:
            self.seen.queue_log.append((self.user_id, request_id, self.api.history))
            if request_id:
                self.seen.queue_requests.add(request_id)


def run_shoppers(urls: str | list[str], tokens: dict[int, str], seen: Seen) -> tuple[list[Shopper], threading.Event]:
    """One thread per user; with several API instances, user i talks to instance i mod n."""
    urls = [urls] if isinstance(urls, str) else urls
    stop = threading.Event()
    shoppers = [
        Shopper(urls[user_id % len(urls)], user_id, token, seen, stop, seed=user_id)
        for user_id, token in tokens.items()
    ]
    for shopper in shoppers:
        shopper.start()
    return shoppers, stop


def stop_shoppers(shoppers: list[Shopper], stop: threading.Event) -> None:
    stop.set()
    for shopper in shoppers:
        shopper.join(60)
        assert not shopper.is_alive(), f"{shopper.name} did not stop"

"""The in-process recorder and its flush to Redis (real Redis), and the figures read back."""

from __future__ import annotations

import time

import pytest
from django_redis import get_redis_connection

from common.live.progress import progress_parse, progress_read, progress_record
from common.live.recorder import RECORDER, Recorder, bucket_key, read_buckets
from conftest import client_for
from dashboard.selectors import _quantile, rates
from orders.tests.helpers import fund, make_product


def test_requests_are_counted_per_second_and_flushed_in_one_pipeline():
    recorder = Recorder()
    recorder.observe_request("payment", 200, 0.004)
    recorder.observe_request("payment", 200, 0.012)
    recorder.observe_request("queue", 409, 0.002, "SOLD_OUT")
    recorder.observe_request("api", 503, 0.3)
    recorder.count("orders:queue", 3)
    second = int(time.time())
    commands = recorder.flush(everything=True)

    stored = read_buckets([second]).get(second) or read_buckets([second - 1])[second - 1]
    assert stored["payment:n"] == 2 and stored["payment:2xx"] == 2
    assert stored["payment:l3"] == 1  # 4 ms: (3, 5]
    assert stored["payment:l6"] == 1  # 12 ms: (10, 15]
    assert stored["queue:4xx"] == 1 and stored["refused:SOLD_OUT"] == 1
    assert stored["api:5xx"] == 1 and stored["orders:queue"] == 3
    assert commands == len(stored) + 1  # one HINCRBY per field, one EXPIRE
    assert 0 < get_redis_connection("default").ttl(bucket_key(second)) <= 15 * 60
    assert recorder.flush(everything=True) == 0  # nothing left in memory


def test_figures_of_several_processes_add_up():
    second = int(time.time()) - 10
    for _ in range(2):  # two processes' recorders flushing the same second
        recorder = Recorder()
        recorder._buckets[second] = {"payment:n": 5, "payment:2xx": 5}
        recorder.flush(everything=True)
    assert read_buckets([second])[second] == {"payment:n": 10, "payment:2xx": 10}


def test_quantiles_come_from_the_histogram():
    # 10 requests in (5, 7.5] ms, 10 in (50, 75] ms
    histogram = [0] * 22
    histogram[4], histogram[10] = 10, 10
    assert 5 <= _quantile(histogram, 0.5) <= 7.5
    assert 50 <= _quantile(histogram, 0.95) <= 75
    assert _quantile([0] * 22, 0.5) is None


def test_rates_sum_orders_payments_refusals_and_5xx_over_the_last_minute():
    now = time.time()
    end = int(now) - 3
    recorder = Recorder()
    recorder._buckets[end] = {
        "checkout:2xx": 4,
        "orders:queue": 2,
        "payment:2xx": 3,
        "refused:SOLD_OUT": 5,
        "failed:SOLD_OUT": 1,
        "failed:INSUFFICIENT_BALANCE": 2,
        "api:5xx": 1,
        "payment:n": 3,
        "payment:l5": 3,
    }
    recorder._buckets[end - 100] = {"payment:2xx": 60}  # outside the last minute, inside the charts
    recorder.flush(everything=True)

    found = rates(now=now)
    minute = found["lastMinute"]
    assert minute["ordersPerSecond"] == pytest.approx(6 / 60, abs=0.01)
    assert minute["paymentsPerSecond"] == pytest.approx(3 / 60, abs=0.01)
    assert minute["refusalsPerSecond"] == pytest.approx(8 / 60, abs=0.01)
    assert minute["errors5xx"] == 1
    assert minute["refusalsByCode"] == {"SOLD_OUT": 6, "INSUFFICIENT_BALANCE": 2}
    assert 7.5 <= minute["latencyMs"]["payment"]["p95"] <= 10
    series = found["series"]
    assert series["t"][-1] == end and len(series["t"]) == 300
    assert series["orders"][-1] == 6 and series["payments"][series["t"].index(end - 100)] == 60

    later = rates(since=end - 2, now=now)  # only the seconds the page does not have yet
    assert later["series"]["t"] == [end - 1, end]


@pytest.mark.django_db
def test_the_middleware_records_api_answers_and_refusal_codes():
    RECORDER.flush(everything=True)
    get_redis_connection("default").delete(*[bucket_key(int(time.time()) + d) for d in range(-5, 5)])
    product = make_product(stock=5, is_flash_sale=True)
    from shop.tests.factories import UserFactory

    user = UserFactory()
    fund(user, 1_000_000)
    client = client_for(user)
    answer = client.post(
        "/api/v1/checkout/initiate", {"directOrderItems": [{"productId": 999_999, "quantity": 1}]}, format="json"
    )
    assert answer.status_code in (400, 404)
    answer = client.post(
        "/api/v1/checkout/initiate", {"directOrderItems": [{"productId": product.pk, "quantity": 1}]}, format="json"
    )
    assert answer.status_code == 200
    RECORDER.flush(everything=True)
    now = int(time.time())
    totals: dict[str, int] = {}
    for bucket in read_buckets(range(now - 5, now + 1)).values():
        for key, value in bucket.items():
            totals[key] = totals.get(key, 0) + value
    assert totals["checkout:n"] == 2 and totals["checkout:2xx"] == 1 and totals["checkout:4xx"] == 1
    assert sum(v for k, v in totals.items() if k.startswith("refused:")) == 1


def test_consumer_progress_per_partition():
    from confluent_kafka import TIMESTAMP_CREATE_TIME

    class Msg:
        def __init__(self, partition, offset, stamp):
            self._p, self._o, self._s = partition, offset, stamp

        def topic(self):
            return "t.queue"

        def partition(self):
            return self._p

        def offset(self):
            return self._o

        def timestamp(self):
            return (TIMESTAMP_CREATE_TIME, self._s)

    now_ms = int(time.time() * 1000)
    progress_record("checkout", [Msg(0, 5, now_ms - 2000), Msg(0, 7, now_ms - 1500), Msg(3, 1, now_ms - 100)])
    RECORDER.flush(everything=True)
    found = {p.partition: p for p in progress_read("checkout")}
    assert found[0].offset == 7 and 1.4 <= found[0].lag_seconds <= 3
    assert found[3].offset == 1 and found[3].lag_seconds < 1.5
    assert progress_parse({b"t:1": b'{"offset": 1, "messageAt": 100.0, "handledAt": 101.0}'}, now=111.0)[
        0
    ].handled_ago_seconds == pytest.approx(10.0)

"""The typed catalog caches (incident 1): a hit is exactly a miss, old or broken entries are misses,
changes invalidate, the popular list survives a stampede, and Redis down means the database."""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from common.codecs import cache_write
from shop.caches import (
    PAGE_CODEC,
    POPULAR,
    POPULAR_CODEC,
    PRODUCT_CODEC,
    RANKING_CODEC,
    PopularItem,
    ProductData,
    ProductPage,
    RankingEntry,
    catalog_generation,
    entry_key,
    page_name,
    product_name,
)
from shop.models import Product, SalesDaily
from shop.selectors.catalog import POPULAR_LOCK
from shop.services.catalog import products_set_status, sales_record
from shop.tests.factories import CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/products"
typed = caches["typed"]


def sold(product, quantity, days_ago=0):
    SalesDaily.objects.create(product=product, day=timezone.localdate() - timedelta(days=days_ago), quantity=quantity)


def raw_entry(codec_name: str, version: int, data) -> bytes:
    return json.dumps({"s": codec_name, "v": version, "d": data}).encode()


def decode_misses(codec) -> float:
    return REGISTRY.get_sample_value("cache_decode_misses_total", {"codec": codec.name}) or 0.0


def popular_builds(source: str) -> float:
    return REGISTRY.get_sample_value("catalog_popular_builds_total", {"source": source}) or 0.0


# --- codecs --------------------------------------------------------------------------------

PRODUCT_A = ProductData(id=1, name="Kettle ☕", description="", price=39_000, category_id=2)
SAMPLES = [
    (PRODUCT_CODEC, PRODUCT_A),
    (PAGE_CODEC, ProductPage(contents=(PRODUCT_A, ProductData(2, "b", "d", 1, 1)), last_id=2)),
    (PAGE_CODEC, ProductPage(contents=(), last_id=None)),
    (POPULAR_CODEC, (PopularItem(1, "a", "d", 10, 3, sales_count=7),)),
    (POPULAR_CODEC, ()),
    (RANKING_CODEC, (RankingEntry(rank=1, product_id=5, product_name="x", sales_count=9),)),
]


@pytest.mark.parametrize(("codec", "value"), SAMPLES)
def test_codec_round_trip_returns_the_same_dataclasses(codec, value):
    decoded = codec.decode(codec.encode(value))
    assert decoded == value and type(decoded) is type(value)


def test_the_wire_form_is_a_positional_row():
    assert PRODUCT_CODEC.decode(raw_entry("catalog.product", 1, [1, "Kettle ☕", "", 39_000, 2])) == PRODUCT_A


@pytest.mark.parametrize(
    "raw",
    [
        raw_entry("catalog.product", 0, [1, "a", "", 1, 1]),  # an older version
        raw_entry("catalog.product", 2, [1, "a", "", 1, 1]),  # a newer one (during a rolling deploy)
        raw_entry("catalog.popular", 1, []),  # another shape under this key
        raw_entry("catalog.product", 1, {"id": 1, "name": "a", "description": "", "price": 1, "categoryId": 1}),
        raw_entry("catalog.product", 1, ["1", "a", "", 1, 1]),
        raw_entry("catalog.product", 1, [1, "a", "", 1.5, 1]),
        raw_entry("catalog.product", 1, [1, "a", "", 1]),
        raw_entry("catalog.product", 1, [1, "a", "", 1, 1, 0]),
        raw_entry("catalog.product", 1, [True, "a", "", 1, 1]),
        raw_entry("catalog.product", 1, [1, None, "", 1, 1]),
        raw_entry("catalog.product", 1, None),
        b'{"s":"catalog.product","v":1}',
        b'{"@class":"Cursor","contents":[]}',  # what the old service's generic serializer wrote
        b"\x80\x04\x95 pickle",
        b"",
    ],
)
def test_anything_but_the_current_shape_and_version_decodes_to_a_miss(raw):
    before = decode_misses(PRODUCT_CODEC)
    assert PRODUCT_CODEC.decode(raw) is None
    assert decode_misses(PRODUCT_CODEC) == before + 1


@pytest.mark.parametrize(
    ("codec", "data"),
    [
        (PAGE_CODEC, [[[1, "a", "", 1, 1]], "2"]),
        (PAGE_CODEC, [[[1, "a", "", 1, 1]]]),
        (PAGE_CODEC, [[[1, "a", "", 1]], None]),
        (PAGE_CODEC, {"contents": [], "lastId": None}),
        (POPULAR_CODEC, [[1, "a", "", 1, 1]]),  # a product row where a popular row belongs
        (POPULAR_CODEC, [[1, "a", "", 1, 1, 5], None]),
        (POPULAR_CODEC, {"items": []}),
        (RANKING_CODEC, [[1, 2, "x", "9"]]),
    ],
)
def test_broken_pages_and_lists_decode_to_a_miss(codec, data):
    assert codec.decode(raw_entry(codec.name, codec.version, data)) is None


# --- hit == miss, with zero queries on the hit path -----------------------------------------


def test_detail_hit_equals_miss_and_runs_no_query(api, django_assert_num_queries):
    product = ProductFactory()
    with django_assert_num_queries(1):
        miss = api.get(f"{URL}/{product.pk}")
    with django_assert_num_queries(0):
        hit = api.get(f"{URL}/{product.pk}")
    assert miss.status_code == hit.status_code == 200
    assert hit.json() == miss.json()
    assert hit.content == miss.content
    assert typed.get(entry_key(catalog_generation(), product_name(product.pk))) is not None


def test_popular_hit_equals_miss_and_runs_no_query(api, django_assert_num_queries):
    for n, product in enumerate(ProductFactory.create_batch(3), start=1):
        sold(product, n)
    miss = api.get(f"{URL}/popular", {"limit": 3})
    with django_assert_num_queries(0):
        hit = api.get(f"{URL}/popular", {"limit": 3})
    with django_assert_num_queries(0):
        shorter = api.get(f"{URL}/popular", {"limit": 2})  # one cached list serves every limit
    assert miss.status_code == hit.status_code == 200
    assert hit.content == miss.content
    assert shorter.json()["data"] == miss.json()["data"][:2]


@pytest.mark.parametrize("query", [{"size": 2}, {"size": 2, "lastId": 1}, {"categoryId": "CAT"}, {}])
def test_list_page_hit_equals_miss(api, django_assert_num_queries, query):
    category = CategoryFactory()
    ProductFactory.create_batch(5, category=category)
    query = {k: (category.pk if v == "CAT" else v) for k, v in query.items()}
    miss = api.get(URL, query)
    with django_assert_num_queries(0):
        hit = api.get(URL, query)
    assert miss.status_code == hit.status_code == 200
    assert hit.content == miss.content


def test_ranking_hit_equals_miss(api, django_assert_num_queries):
    for n, product in enumerate(ProductFactory.create_batch(3), start=1):
        sold(product, n)
    miss = api.get(f"{URL}/ranking/daily")
    with django_assert_num_queries(0):
        hit = api.get(f"{URL}/ranking/daily")
    assert hit.content == miss.content and len(miss.json()["data"]) == 3


# --- entries of an older schema version (or broken ones) are misses, then rewritten ----------


def test_old_version_detail_entry_is_a_miss_and_is_rewritten(api, django_assert_num_queries):
    product = ProductFactory(name="Current name")
    key = entry_key(catalog_generation(), product_name(product.pk))
    old = raw_entry(PRODUCT_CODEC.name, PRODUCT_CODEC.version - 1, {"productId": product.pk, "title": "Old name"})
    typed.set(key, old)
    before = decode_misses(PRODUCT_CODEC)
    with django_assert_num_queries(1):  # read from the database
        response = api.get(f"{URL}/{product.pk}")
    assert response.status_code == 200
    assert response.json()["data"]["name"] == "Current name"
    assert decode_misses(PRODUCT_CODEC) == before + 1
    assert json.loads(typed.get(key))["v"] == PRODUCT_CODEC.version  # rewritten in the current format
    with django_assert_num_queries(0):
        assert api.get(f"{URL}/{product.pk}").json() == response.json()


def test_old_version_page_entry_is_a_miss_and_is_rewritten(api):
    products = ProductFactory.create_batch(3)
    key = entry_key(catalog_generation(), page_name(category_id=None, last_id=None, size=20))
    # the old service's shape: a generic map where the page object should be
    typed.set(key, raw_entry(PAGE_CODEC.name, PAGE_CODEC.version - 1, {"@class": "Cursor", "contents": []}))
    response = api.get(URL)
    assert response.status_code == 200
    assert [p["id"] for p in response.json()["data"]["contents"]] == [p.pk for p in products]
    assert json.loads(typed.get(key))["v"] == PAGE_CODEC.version


def test_old_version_popular_entry_is_a_miss_and_is_rewritten(api):
    product = ProductFactory()
    sold(product, 4)
    key = entry_key(catalog_generation(), POPULAR)
    typed.set(key, raw_entry(POPULAR_CODEC.name, POPULAR_CODEC.version - 1, [{"id": product.pk, "sales": 999}]))
    response = api.get(f"{URL}/popular")
    assert response.status_code == 200
    assert [(p["id"], p["salesCount"]) for p in response.json()["data"]] == [(product.pk, 4)]
    assert json.loads(typed.get(key))["v"] == POPULAR_CODEC.version


def test_garbage_entry_is_a_miss_not_a_500(api):
    product = ProductFactory()
    typed.set(entry_key(catalog_generation(), product_name(product.pk)), b"\x00not json at all")
    response = api.get(f"{URL}/{product.pk}")
    assert response.status_code == 200 and response.json()["data"]["id"] == product.pk


# --- invalidation ---------------------------------------------------------------------------


def warm(api, product) -> None:
    for url in (URL, f"{URL}/{product.pk}", f"{URL}/popular", f"{URL}/ranking/daily"):
        assert api.get(url).status_code == 200


def test_admin_product_change_invalidates_list_detail_popular_and_rankings(
    api, operator, django_capture_on_commit_callbacks
):
    product = ProductFactory(name="Before", price=1_000)
    sold(product, 3)
    warm(api, product)
    form = {
        "name": "After", "description": "new", "price": 2_000, "category": product.category_id,
        "status": "ACTIVE", "is_flash_sale": "",
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(f"/admin/shop/product/{product.pk}/change/", form)
    assert response.status_code == 302, response.content[:2000]
    assert api.get(f"{URL}/{product.pk}").json()["data"]["name"] == "After"
    assert api.get(URL).json()["data"]["contents"][0]["price"] == 2_000
    assert api.get(f"{URL}/popular").json()["data"][0]["name"] == "After"
    assert api.get(f"{URL}/ranking/daily").json()["data"][0]["productName"] == "After"


def test_admin_add_creates_the_stock_row_and_shows_the_product(api, operator, django_capture_on_commit_callbacks):
    category = CategoryFactory()
    assert api.get(URL).json()["data"]["contents"] == []
    form = {"name": "New", "description": "", "price": 5_000, "category": category.pk, "status": "ACTIVE"}
    with django_capture_on_commit_callbacks(execute=True):
        assert operator.post("/admin/shop/product/add/", form).status_code == 302
    product = Product.objects.get(name="New")
    assert product.stock.quantity == 0
    assert [p["id"] for p in api.get(URL).json()["data"]["contents"]] == [product.pk]


def test_deactivation_hides_the_product_everywhere(api, django_capture_on_commit_callbacks):
    keep, gone = ProductFactory.create_batch(2)
    sold(keep, 1), sold(gone, 5)
    warm(api, gone)
    with django_capture_on_commit_callbacks(execute=True):
        products_set_status(product_ids=[gone.pk], status=Product.Status.INACTIVE)
    assert api.get(f"{URL}/{gone.pk}").status_code == 404
    assert [p["id"] for p in api.get(URL).json()["data"]["contents"]] == [keep.pk]
    assert [p["id"] for p in api.get(f"{URL}/popular").json()["data"]] == [keep.pk]
    assert [e["productId"] for e in api.get(f"{URL}/ranking/daily").json()["data"]] == [keep.pk]


def test_a_recorded_sale_refreshes_popular_and_rankings(api, django_capture_on_commit_callbacks):
    first, second = ProductFactory.create_batch(2)
    sold(first, 2)
    assert [p["id"] for p in api.get(f"{URL}/popular").json()["data"]] == [first.pk]
    assert [e["productId"] for e in api.get(f"{URL}/ranking/daily").json()["data"]] == [first.pk]
    with django_capture_on_commit_callbacks(execute=True):
        sales_record(product_id=second.pk, quantity=5, day=timezone.localdate())
    popular = api.get(f"{URL}/popular").json()["data"]
    assert [(p["id"], p["salesCount"]) for p in popular] == [(second.pk, 5), (first.pk, 2)]
    ranking = api.get(f"{URL}/ranking/daily").json()["data"]
    assert [(e["productId"], e["salesCount"]) for e in ranking] == [(second.pk, 5), (first.pk, 2)]


# --- stampede protection of the popular list ---------------------------------------------------


def test_while_one_process_rebuilds_the_others_serve_the_stale_copy(api, django_assert_num_queries):
    product = ProductFactory()
    sold(product, 3)
    previous = api.get(f"{URL}/popular").json()
    typed.delete(entry_key(catalog_generation(), POPULAR))  # the fresh entry is gone (a sale invalidated it) ...
    assert caches["default"].add(POPULAR_LOCK, 1, timeout=30)  # ... and someone else is rebuilding it
    before = popular_builds("stale")
    with django_assert_num_queries(0):
        response = api.get(f"{URL}/popular")
    assert response.json() == previous
    assert popular_builds("stale") == before + 1


def test_without_a_stale_copy_a_reader_waits_for_the_rebuilder(api):
    product = ProductFactory()
    sold(product, 3)
    assert caches["default"].add(POPULAR_LOCK, 1, timeout=30)
    expected = (PopularItem(product.pk, product.name, product.description, product.price, product.category_id, 3),)

    def rebuilder():  # the lock holder finishes its rebuild 200 ms later
        time.sleep(0.2)
        cache_write(POPULAR_CODEC, entry_key(catalog_generation(), POPULAR), expected, 60)

    thread = threading.Thread(target=rebuilder)
    thread.start()
    before = popular_builds("waited")
    response = api.get(f"{URL}/popular")
    thread.join()
    assert [(p["id"], p["salesCount"]) for p in response.json()["data"]] == [(product.pk, 3)]
    assert popular_builds("waited") == before + 1


def test_a_stuck_rebuilder_costs_a_reader_at_most_a_second_then_it_reads_the_database(api):
    product = ProductFactory()
    sold(product, 3)
    assert caches["default"].add(POPULAR_LOCK, 1, timeout=30)
    started = time.monotonic()
    response = api.get(f"{URL}/popular")
    assert 0.9 < time.monotonic() - started < 3
    assert [(p["id"], p["salesCount"]) for p in response.json()["data"]] == [(product.pk, 3)]


@pytest.mark.django_db(transaction=True)
def test_a_cold_popular_list_is_rebuilt_once_under_a_stampede():
    for n, product in enumerate(ProductFactory.create_batch(5), start=1):
        sold(product, n)
    rebuilt, from_database = popular_builds("rebuilt"), popular_builds("database")
    barrier, results = threading.Barrier(16), []

    def reader():
        try:
            barrier.wait()
            results.append(APIClient().get(f"{URL}/popular"))
        finally:
            connection.close()

    threads = [threading.Thread(target=reader) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status_code for r in results] == [200] * 16
    assert len({r.content for r in results}) == 1
    assert popular_builds("rebuilt") == rebuilt + 1  # one database rebuild for 16 concurrent misses
    assert popular_builds("database") == from_database  # the others waited for it (or read its copy)


# --- Redis down: the database answers -----------------------------------------------------------


def test_with_redis_stopped_every_catalog_endpoint_answers_200_from_the_database(
    api, throwaway_redis, django_capture_on_commit_callbacks, django_assert_num_queries
):
    product = ProductFactory()
    sold(product, 2)
    urls = [
        URL,
        f"{URL}?categoryId={product.category_id}",
        f"{URL}/{product.pk}",
        f"{URL}/popular",
        f"{URL}/ranking/daily",
        f"{URL}/ranking/weekly",
        f"{URL}/ranking/total",
        f"{URL}/{product.pk}/ranking",
        f"/api/v1/inventory/products/{product.pk}",
    ]
    cached = {url: api.get(url) for url in urls}  # through the throwaway Redis
    assert caches["typed"].get(entry_key(catalog_generation(), product_name(product.pk))) is not None
    with django_assert_num_queries(0):
        api.get(f"{URL}/{product.pk}")

    throwaway_redis.stop()
    assert catalog_generation() is None  # really down
    for url in urls:
        response = api.get(url)
        assert response.status_code == 200, (url, response.content)
        assert response.json() == cached[url].json(), url
    with django_capture_on_commit_callbacks(execute=True):  # a sale is still recorded; only Redis effects wait
        sales_record(product_id=product.pk, quantity=1, day=timezone.localdate())
    assert SalesDaily.objects.get(product=product, day=timezone.localdate()).quantity == 3
    assert api.get(f"{URL}/{product.pk}/ranking").json()["data"]["salesCount"] == 3


def test_the_beat_task_prewarms_the_popular_list(api, django_assert_num_queries):
    from shop.tasks import popular_prewarm

    product = ProductFactory()
    sold(product, 2)
    assert popular_prewarm() == 1
    with django_assert_num_queries(0):  # the first reader already hits
        response = api.get(f"{URL}/popular")
    assert [(p["id"], p["salesCount"]) for p in response.json()["data"]] == [(product.pk, 2)]
    assert caches["default"].add(POPULAR_LOCK, 1, timeout=30)  # a reader is rebuilding right now
    assert popular_prewarm() == -1


# --- the near cache (per process, off in tests unless turned on) ---------------------------------


@pytest.fixture
def near_cache_on():
    from shop.caches import near_cache

    near_cache.clear()
    with override_settings(CATALOG_NEAR_CACHE_SECONDS=0.3):
        yield near_cache
    near_cache.clear()


def test_near_cache_serves_recent_hits_without_redis_or_database(
    api, near_cache_on, throwaway_redis, django_assert_num_queries
):
    product = ProductFactory()
    sold(product, 2)
    urls = [f"{URL}/{product.pk}", URL, f"{URL}/popular", f"{URL}/ranking/daily"]
    first = {url: api.get(url).content for url in urls}
    throwaway_redis.stop()  # neither Redis ...
    with django_assert_num_queries(0):  # ... nor the database is asked
        assert {url: api.get(url).content for url in urls} == first


def test_near_cache_forgets_after_its_lifetime(api, near_cache_on):
    product = ProductFactory(name="Before")
    assert api.get(f"{URL}/{product.pk}").json()["data"]["name"] == "Before"
    Product.objects.filter(pk=product.pk).update(name="After")  # changed behind the services' back ...
    typed.delete(entry_key(catalog_generation(), product_name(product.pk)))  # ... and Redis forgot it
    assert api.get(f"{URL}/{product.pk}").json()["data"]["name"] == "Before"  # within the lifetime
    time.sleep(0.35)
    assert api.get(f"{URL}/{product.pk}").json()["data"]["name"] == "After"


def test_this_process_sees_its_own_changes_at_once(api, near_cache_on, django_capture_on_commit_callbacks):
    keep, gone = ProductFactory.create_batch(2)
    sold(gone, 3)
    assert [p["id"] for p in api.get(f"{URL}/popular").json()["data"]] == [gone.pk]
    with django_capture_on_commit_callbacks(execute=True):
        products_set_status(product_ids=[gone.pk], status=Product.Status.INACTIVE)
    assert api.get(f"{URL}/popular").json()["data"] == []
    assert api.get(f"{URL}/{gone.pk}").status_code == 404
    with django_capture_on_commit_callbacks(execute=True):
        sales_record(product_id=keep.pk, quantity=1, day=timezone.localdate())
    assert [p["id"] for p in api.get(f"{URL}/popular").json()["data"]] == [keep.pk]
